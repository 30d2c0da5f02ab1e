"""The publishing points of an app (DESIGN.md §6): one `PublishingPoint` per (live rule, NAME.isml).

A point is loaded from its directory (its archive, live/point.py) on first use; with `create_on_ingest: false`
only points whose NAME.isml directory exists are found, anything else is NotFound (404).
"""

from __future__ import annotations

import weakref
from pathlib import Path

from aiohttp import web

from ..errors import NotFound
from ..live.point import PublishingPoint
from ..remap import SourceRef

_POINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _registry(app: web.Application) -> dict:
    return _POINTS.setdefault(app, {})


def get_point(app: web.Application, ref: SourceRef, name: str, create: bool) -> PublishingPoint:
    """The point NAME.isml of this rule, loaded from its directory (archive) on first use."""
    settings = ref.rule.live
    key = (ref.rule.from_, name)
    points = _registry(app)
    point = points.get(key)
    if point is not None:
        return point
    directory = Path(settings.storage) / name
    if not directory.is_dir():
        if not create:
            raise NotFound(f"no publishing point {name}")
        directory.mkdir(parents=True, exist_ok=True)
    point = PublishingPoint(name, directory, settings)
    point.load()
    points[key] = point
    return point
