"""Pseudo-streaming: MovieFile + ClipRequest -> Plan. STUB signature; implemented by the core."""

from __future__ import annotations

from ..plan import Plan
from .params import ClipRequest


def plan_clip(movie_file, request: ClipRequest, content_type: str = "video/mp4") -> Plan:
    """The rewritten file: ftyp + moov + mdat header as bytes, mdat payload as SourceRanges.
    Raises BadRequest (start at/after duration), UnsupportedMedia, MalformedMedia."""
    raise NotImplementedError
