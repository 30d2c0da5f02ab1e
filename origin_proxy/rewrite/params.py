"""`?start=&end=&mode=` query values -> ClipRequest. STUB signature; implemented by the core."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class ClipRequest:
    """A validated pseudo-streaming request. start_s/end_s exact decimals (Fraction), None when absent;
    mode "exact" or "keyframe"."""

    start_s: Fraction | None
    end_s: Fraction | None
    mode: str

    def normalized(self) -> str:
        """Canonical text of the parameters, for ETags and cache keys: e.g. "start=290.12&end=300&mode=exact"."""
        raise NotImplementedError


def parse_clip_query(query: Mapping[str, str], default_mode: str = "exact") -> ClipRequest | None:
    """ClipRequest, or None when the query names neither start nor end (serve the file as is).
    Raises BadRequest with a one-line reason."""
    raise NotImplementedError
