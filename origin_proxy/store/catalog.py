"""What the metadata cache (store/cache.py) holds: one typed key per kind of value, so the cache can be listed and
nobody builds ad-hoc tuples. Plain values, no I/O.

| key                          | value                                   | made by                               |
|------------------------------|-----------------------------------------|---------------------------------------|
| MovieKey(source)             | isobmff.movie.MovieFile                 | store/moov.py (through the L2 cache)   |
| IsmKey(source)               | package.ism.ServerManifest              | server/packaging_set.py                  |
| PackagingKey(presentation)   | package.tracks.Packaging                | package_movie / package_set            |
| SmoothKey(presentation)      | package.smooth.SmoothPresentation       | smooth_presentation                    |
| ManifestKey(presentation, k) | server.packaging.Rendered (bytes)         | HLS master, MPD, Smooth client manifest|

The head cache (store/heads.py) holds frozen Plans by `HeadKey(version, kind, params)`: kind "clip" (version: the
file's SourceVersion; params: the normalized `?start=&end=` and the content type), "init" and "segment" (version:
the Presentation; params: representation id [and segment index]), "fragment" (the Presentation; params: the
Smooth StreamIndex name, bitrate and start time).

A `SourceVersion` is one version of one object (its identity and validator, as the source reported them); a
`Presentation` names what a set of manifests is built from: one file, or a `.ism` and the validators of its
members, cut at `target_s` seconds. A new validator is a new key: stale entries age out by LRU/TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal


@dataclass(frozen=True)
class SourceVersion:
    """One version of one upstream object: `identity` (file path or URL) and `validator` (ETag, mtime+size ...)."""

    identity: str
    validator: str


@dataclass(frozen=True)
class Presentation:
    """A packaged presentation: `source` (the MP4, or the .ism of a set), `members` (a set's member validators in
    the .ism's order; () for one file) and the segment target `target_s`."""

    source: SourceVersion
    target_s: Fraction
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class MovieKey:
    source: SourceVersion


@dataclass(frozen=True)
class IsmKey:
    source: SourceVersion


@dataclass(frozen=True)
class PackagingKey:
    presentation: Presentation


@dataclass(frozen=True)
class SmoothKey:
    presentation: Presentation


@dataclass(frozen=True)
class ManifestKey:
    presentation: Presentation
    kind: Literal["master", "mpd", "smooth"]


@dataclass(frozen=True)
class HeadKey:
    version: SourceVersion | Presentation
    kind: Literal["clip", "init", "segment", "fragment"]
    params: str


CacheKey = MovieKey | IsmKey | PackagingKey | SmoothKey | ManifestKey
