"""Plain values the store/ layer and the config share, without construct or numpy: the parse limits and the
serialized metadata of one file (what the shared L2 cache holds). Reading the YAML config imports only this."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaLimits:
    """Configured limits on what we agree to parse.

    max_moov_bytes: a larger moov raises UnsupportedMedia (501).
    max_samples: more samples in one track raises UnsupportedMedia (501).
    max_tracks: more trak boxes in the moov raises UnsupportedMedia (501).
    head_bytes: size of the first read of a file, and of each read at a top-level box past it.
    """

    max_moov_bytes: int = 64 * 1024 * 1024
    max_samples: int = 20_000_000
    head_bytes: int = 64 * 1024
    max_tracks: int = 256


@dataclass(frozen=True, eq=False)
class MoovBlob:
    """The serialized form of a file's metadata: the raw moov box plus the file-level facts MovieFile needs.

    This is what the shared (L2) cache stores; parsing it again with `movie_file_from_blob` gives the same
    MovieFile as `load_movie_file` would.

    Attributes:
        ftyp: the raw ftyp box (header included), or b"" when the file has none.
        moov: the whole moov box, header included (len(moov) is its size in bytes).
        file_size: bytes of the whole file.
        moov_offset: file offset of the moov box, bytes.
        moov_before_mdat: True when no mdat precedes the moov (a "faststart" file).
    """

    ftyp: bytes
    moov: bytes
    file_size: int
    moov_offset: int
    moov_before_mdat: bool
