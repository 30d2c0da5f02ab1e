"""Per-track timeline index of a publishing point (DESIGN.md §6). Pure: values in, values out.

One `TrackIndex` per ingested track: ordered columns of (time, duration, size, key flag, location) in the track's
own timescale, times signed. Appending checks order: an exact duplicate time (encoder resend, redundant encoders)
is dropped (first wins); a time before the last one is a jump back (MalformedIngest, 400, issue 11 item 5).
`prune(before)` drops in-memory entries older than the DVR window; the archive keeps them.
With `restart_on_encoder_reconnect` the point shifts a reconnected stream's times so they continue from the end
(live/point.py) and marks where that happened in `discontinuities`, so the index itself stays ordered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import MalformedIngest


class Appended(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"


@dataclass
class TrackIndex:
    """The fragments of one track, in time order.

    Attributes:
        timescale: ticks per second of every time and duration here.
        times, durations: fragment start and length (ticks); sizes: moof+mdat bytes; keys: starts with a sync
            sample; locations: where the bytes are (opaque to this module: archive file and offset, or bytes).
        first_number: the fragment number (egress mfhd sequence and HLS/DASH $Number$) of times[0]; it never
            moves for a fragment, so pruning does not renumber.
        discontinuities: the indexed times (ticks, ascending) of fragments that start a discontinuity (a
            reconnected encoder's timeline jumped back and was shifted to continue here); kept when pruned.
    """

    timescale: int
    times: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    keys: list[bool] = field(default_factory=list)
    locations: list[Any] = field(default_factory=list)
    first_number: int = 1
    total_bytes: int = 0
    total_fragments: int = 0
    discontinuities: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def end_time(self) -> int | None:
        return self.times[-1] + self.durations[-1] if self.times else None

    def check(self, time: int) -> Appended:
        """What appending a fragment at `time` would do. Raises MalformedIngest (400) for a jump back."""
        if self.times and time <= self.times[-1]:
            if time in self._recent():
                return Appended.DUPLICATE
            raise MalformedIngest(f"fragment at {time} is before the last one ({self.times[-1]}): timeline jumps back")
        return Appended.ADDED

    def _recent(self) -> set[int]:
        return set(self.times[-64:])

    def append(self, time: int, duration: int, size: int, key: bool, location: Any) -> Appended:
        """Add a fragment (after `check`). Returns ADDED or DUPLICATE (not added)."""
        verdict = self.check(time)
        if verdict is Appended.ADDED:
            self.times.append(time)
            self.durations.append(duration)
            self.sizes.append(size)
            self.keys.append(key)
            self.locations.append(location)
            self.total_bytes += size
            self.total_fragments += 1
        return verdict

    def number_of(self, time: int) -> int | None:
        """The fragment number at exactly `time`, or None."""
        import bisect

        i = bisect.bisect_left(self.times, time)
        return self.first_number + i if i < len(self.times) and self.times[i] == time else None

    def position(self, time: int) -> int | None:
        import bisect

        i = bisect.bisect_left(self.times, time)
        return i if i < len(self.times) and self.times[i] == time else None

    def prune(self, before_time: int) -> int:
        """Drop fragments that end at or before `before_time` (ticks). Returns how many left."""
        n = 0
        while n < len(self.times) - 1 and self.times[n] + self.durations[n] <= before_time:
            n += 1
        if n:
            del self.times[:n], self.durations[:n], self.sizes[:n], self.keys[:n], self.locations[:n]
            self.first_number += n
        return n

    def window(self, since_time: int | None) -> range:
        """Positions of the fragments starting at or after `since_time` (all when None)."""
        import bisect

        start = 0 if since_time is None else bisect.bisect_left(self.times, since_time)
        return range(start, len(self.times))
