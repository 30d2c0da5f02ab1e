"""Async glue between a Source and the sans-I/O MP4 parser: find moov, read it, parse it.

STUB (contract for the edge): implemented by the core.
"""

from __future__ import annotations

from dataclasses import dataclass

from .source import Source


@dataclass(frozen=True)
class MediaLimits:
    """Configured limits on what we agree to parse.

    max_moov_bytes: a larger moov raises UnsupportedMedia (501).
    max_samples: more samples in one track raises UnsupportedMedia (501).
    head_bytes: size of the first read of a file (top-level box headers, often ftyp+moov).
    """

    max_moov_bytes: int = 64 * 1024 * 1024
    max_samples: int = 20_000_000
    head_bytes: int = 64 * 1024


async def load_movie_file(source: Source, limits: MediaLimits):  # -> isobmff.movie.MovieFile
    """Read the top-level boxes, then only the moov, and parse it.

    Returns a MovieFile (immutable; numpy columns read-only) whose `nbytes` is its approximate memory cost.
    Raises MalformedMedia (502), UnsupportedMedia (501/415), and whatever source.read raises.
    """
    raise NotImplementedError
