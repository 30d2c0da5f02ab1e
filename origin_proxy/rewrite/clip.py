"""`?start=&end=` entry point (DESIGN.md §4): select.py chooses the samples and their edit list, moov_writer.py
writes the new ftyp + moov + mdat header; this module joins them into a Plan. Pure.
"""

from __future__ import annotations

from ..isobmff.movie import MovieFile
from ..plan import Plan, SourceRange
from .moov_writer import write_clip
from .params import ClipRequest
from .select import select


def plan_clip(movie_file: MovieFile, request: ClipRequest, content_type: str = "video/mp4") -> Plan:
    """The rewritten file for a `?start=&end=` request (DESIGN.md §4).

    Returns:
        Plan of ftyp + moov + mdat header (generated parts, see moov_writer.write_clip) and one SourceRange of
        the source's mdat bytes.
        `start=0` (or absent) without `end` on a file whose moov precedes its mdat is the file itself.
    Raises:
        BadRequest (400), UnsupportedMedia (501), MalformedMedia (502).
    """
    if not request.start_s and request.end_s is None and movie_file.moov_before_mdat:
        return Plan((SourceRange(0, movie_file.file_size),), content_type)
    cuts = select(movie_file.movie, request)
    head, source_range = write_clip(movie_file, cuts)
    return Plan((*head, source_range) if source_range.size else tuple(head), content_type)
