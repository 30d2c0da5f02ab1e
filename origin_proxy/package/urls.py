"""Packaging URLs (DESIGN.md §5): split a mapped path into the MP4 and the packaging resource asked of it. Pure.

The resource follows the last path segment ending in a MEDIA_SUFFIXES name (.mp4, .m4v, .m4a, .mp4a, .mov,
.isma, .ismv, or .ism; case-insensitive; our own
`init.mp4` excepted). A `.ism` base is a multi-bitrate set: the same resources, with `<rep>` = `v`/`a` + the
1-based position of the track in the .ism's switch (`set.ism/cmaf1/v2/3.m4s`, see package/ism.py).

```text
base/master.m3u8   base/.m3u8                  HLS master playlist (the second is the USP-style alias)
base/manifest.mpd  base/.mpd                   DASH MPD
base/cmaf1/<rep>/playlist.m3u8                 HLS media playlist of one track
base/cmaf1/<rep>/init.mp4                      CMAF header (init segment)
base/cmaf1/<rep>/<n>.m4s                       CMAF fragment n, 1-based
base/Manifest                                  Smooth Streaming client manifest (MS-SSTR)
base/QualityLevels(<bitrate>)/Fragments(<stream>=<t>)  Smooth fragment: stream "video"/"audio" (package/smooth.py),
                                               t its start in 10 MHz units, exactly as the manifest's c@t
```
`cmaf1` is the format-version token: a change of output format gets a new token, so a CDN never mixes old and
new bytes. `<rep>` is `v` or `a` + the source track_ID (`v1`, `a2`), also the DASH Representation@id. Whether
the track and the segment exist is only known with the movie: `PackageResource.segment_index` and the
packaging code check that (NotFound).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import NotFound

FORMAT_TOKEN = "cmaf1"
# ISO BMFF / QuickTime file names users have; .ism: a multi-bitrate set (package/ism.py). A kind that cannot be
# packaged (e.g. a fragmented .ismv) gets the status of its parse (FragmentedMedia 415), never "no such file".
MEDIA_SUFFIXES = (".mp4", ".m4v", ".m4a", ".mp4a", ".mov", ".isma", ".ismv", ".ism")

ResourceKind = Literal["master", "mpd", "playlist", "init", "segment", "smooth", "fragment"]

_MANIFESTS: dict[str, ResourceKind] = {"master.m3u8": "master", ".m3u8": "master",
                                       "manifest.mpd": "mpd", ".mpd": "mpd", "Manifest": "smooth"}
_TRACK_RESOURCE = re.compile(r"(?P<rep>[va][1-9][0-9]{0,9})/(?:(?P<playlist>playlist\.m3u8)|(?P<init>init\.mp4)"
                             r"|(?P<number>[1-9][0-9]{0,8})\.m4s)")
_SMOOTH_FRAGMENT = re.compile(r"QualityLevels\((?P<bitrate>[1-9][0-9]{0,11})\)"
                              r"/Fragments\((?P<stream>[a-z][a-z0-9_]{0,31})=(?P<time>0|[1-9][0-9]{0,18})\)")


@dataclass(frozen=True)
class PackageResource:
    """One packaging resource of an MP4.

    Attributes:
        kind: what is asked for.
        text: the resource part of the path as received, e.g. "cmaf1/v1/12.m4s" (used in ETags).
        representation_id: "v1", "a2" ... for track resources; None for master/mpd.
        segment_number: 1-based segment number for kind "segment"; None otherwise.
        stream, bitrate, fragment_time: for kind "fragment" (Smooth): the StreamIndex name, the QualityLevel
            bitrate and the start time in 10 MHz units; None otherwise.
    """

    kind: ResourceKind
    text: str
    representation_id: str | None = None
    segment_number: int | None = None
    stream: str | None = None
    bitrate: int | None = None
    fragment_time: int | None = None

    @property
    def segment_index(self) -> int:
        """0-based index of the segment (kind "segment" only)."""
        if self.segment_number is None:
            raise ValueError("not a segment resource")
        return self.segment_number - 1


def split_package_path(rest: str) -> tuple[str, PackageResource] | None:
    """Split the decoded path after a remap prefix into (media path, resource).

    Args:
        rest: e.g. "movies/a.mp4/cmaf1/v1/3.m4s".
    Returns:
        ("movies/a.mp4", PackageResource(...)), or None when nothing follows the last media segment (the path is
        served as is, with pseudo-streaming).
    Raises:
        NotFound: something follows a media segment but it is no resource we make.
    """
    segments = rest.split("/")
    last = len(segments) - 1
    for position in range(last, -1, -1):
        if not segments[position].lower().endswith(MEDIA_SUFFIXES):
            continue
        if position == last:
            # Our own init segment ends in .mp4 too: `base/cmaf1/v1/init.mp4` names base, not init.mp4.
            if position >= 3 and segments[-3] == FORMAT_TOKEN and segments[-1] == "init.mp4":
                continue
            return None
        return "/".join(segments[: position + 1]), parse_resource("/".join(segments[position + 1 :]))
    return None


def parse_resource(text: str) -> PackageResource:
    """The resource named by `text` (the part after the media path). Raises NotFound for anything else."""
    kind = _MANIFESTS.get(text)
    if kind is not None:
        return PackageResource(kind, text)
    smooth = _SMOOTH_FRAGMENT.fullmatch(text)
    if smooth is not None:
        return PackageResource("fragment", text, stream=smooth["stream"], bitrate=int(smooth["bitrate"]),
                               fragment_time=int(smooth["time"]))
    token, _, track_part = text.partition("/")
    match = _TRACK_RESOURCE.fullmatch(track_part) if token == FORMAT_TOKEN else None
    if match is None:
        raise NotFound("no such packaging resource", resource=text)
    rep = match["rep"]
    if match["playlist"]:
        return PackageResource("playlist", text, rep)
    if match["init"]:
        return PackageResource("init", text, rep)
    return PackageResource("segment", text, rep, int(match["number"]))


def representation_id(handler_type: bytes, track_id: int) -> str:
    """"v<track_ID>" for video, "a<track_ID>" for audio."""
    return ("v" if handler_type == b"vide" else "a") + str(track_id)


def track_resource(rep_id: str, name: str) -> str:
    """Relative URI of a track resource from the base, e.g. track_resource("v1", "init.mp4") -> "cmaf1/v1/init.mp4"."""
    return f"{FORMAT_TOKEN}/{rep_id}/{name}"
