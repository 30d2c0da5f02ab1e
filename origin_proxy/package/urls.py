"""Packaging URLs (DESIGN.md §5): split a mapped path into the MP4 and the packaging resource asked of it. Pure.

The resource follows the last path segment ending in a MEDIA_SUFFIXES name (.mp4, .m4v, .m4a, .mp4a, .mov,
.isma, .ismv, or .ism; case-insensitive; our own
`init.mp4` excepted). A `.ism` base is a multi-bitrate set: the same resources, with `<rep>` = `v`/`a` + the
1-based position of the track in the .ism's switch (`set.ism/cmaf1/v2/3.m4s`, see package/ism.py).

```text
base/master.m3u8   base/.m3u8                  HLS master playlist (the second is the USP-style alias)
base/manifest.mpd  base/.mpd                   DASH MPD
base/cmaf1/<rep>/playlist.m3u8                 HLS media playlist of one track
base/cmaf1/<rep>/<version>/init.mp4            CMAF header (init segment)
base/cmaf1/<rep>/<version>/<n>.m4s             CMAF fragment n, 1-based
base/Manifest                                  Smooth Streaming client manifest (MS-SSTR)
base/<version>/QualityLevels(<bitrate>)/Fragments(<stream>=<t>)  Smooth fragment: stream "video"/"audio"
                                               (package/smooth.py), t its start in 10 MHz units, as the manifest's c@t
```
`cmaf1` is the format-version token: a change of output format gets a new token. `<version>` (VERSION_DIGITS
lowercase hex digits, `version_token`) is derived from everything else the bytes depend on: the source's
validator (ETag, or mtime + size; for a .ism set the .ism's and every member's) and the segment target. So an
init, segment or fragment URL names exactly the bytes it answers and may be cached as immutable: a player that
follows the URLs of one manifest never combines bytes of two versions, even through caches. An old version's URL
answers 410 Gone (`VersionGone`), never new bytes. The manifests (short-lived) carry the current token.
The same resources without `<version>/` (the URLs before version tokens) are still answered, with the manifests'
short lifetime, since they do not say which version they hold.
`<rep>` is `v` or `a` + the source track_ID (`v1`, `a2`), also the DASH Representation@id. Whether
the track and the segment exist is only known with the movie: `PackageResource.segment_index` and the
packaging code check that (NotFound).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ..errors import NotFound, VersionGone

FORMAT_TOKEN = "cmaf1"
VERSION_DIGITS = 16  # 64 bits of SHA-256: two versions of one file never collide in practice
# ISO BMFF / QuickTime file names users have; .ism: a multi-bitrate set (package/ism.py). A kind that cannot be
# packaged (e.g. a fragmented .ismv) gets the status of its parse (FragmentedMedia 415), never "no such file".
MEDIA_SUFFIXES = (".mp4", ".m4v", ".m4a", ".mp4a", ".mov", ".isma", ".ismv", ".ism")

ResourceKind = Literal["master", "mpd", "playlist", "init", "segment", "smooth", "fragment"]

_MANIFESTS: dict[str, ResourceKind] = {"master.m3u8": "master", ".m3u8": "master",
                                       "manifest.mpd": "mpd", ".mpd": "mpd", "Manifest": "smooth"}
_VERSION = rf"(?:(?P<version>[0-9a-f]{{{VERSION_DIGITS}}})/)?"
_TRACK_RESOURCE = re.compile(r"(?P<rep>[va][1-9][0-9]{0,9})/(?:(?P<playlist>playlist\.m3u8)|" + _VERSION +
                             r"(?:(?P<init>init\.mp4)|(?P<number>[1-9][0-9]{0,8})\.m4s))")
_SMOOTH_FRAGMENT = re.compile(_VERSION + r"QualityLevels\((?P<bitrate>[1-9][0-9]{0,11})\)"
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
        version: the version token of an init, segment or fragment URL; None for manifests and unversioned URLs.
    """

    kind: ResourceKind
    text: str
    representation_id: str | None = None
    segment_number: int | None = None
    stream: str | None = None
    bitrate: int | None = None
    fragment_time: int | None = None
    version: str | None = None

    @property
    def immutable(self) -> bool:
        """True for an init, segment or fragment URL that names its version (it may be cached as immutable)."""
        return self.version is not None

    def check_version(self, current: str) -> None:
        """Raise VersionGone (410) when this URL names another version than `current` (`version_token`);
        unversioned URLs pass."""
        if self.version is not None and self.version != current:
            raise VersionGone("this URL names a version of the media that has been replaced; "
                              "reload the manifest", resource=self.text, current=current)

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
            # Our own init segment ends in .mp4 too: `base/cmaf1/v1[/<version>]/init.mp4` names base.
            if segments[-1] == "init.mp4" and (position >= 3 and segments[-3] == FORMAT_TOKEN
                                               or position >= 4 and segments[-4] == FORMAT_TOKEN):
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
                               fragment_time=int(smooth["time"]), version=smooth["version"])
    token, _, track_part = text.partition("/")
    match = _TRACK_RESOURCE.fullmatch(track_part) if token == FORMAT_TOKEN else None
    if match is None:
        raise NotFound("no such packaging resource", resource=text)
    rep = match["rep"]
    if match["playlist"]:
        return PackageResource("playlist", text, rep)
    if match["init"]:
        return PackageResource("init", text, rep, version=match["version"])
    return PackageResource("segment", text, rep, int(match["number"]), version=match["version"])


def version_token(validators: tuple[str, ...] | list[str], target_s: Fraction) -> str:
    """The `<version>` of the URLs of one presentation: VERSION_DIGITS hex digits of SHA-256 over the source
    validators (one file: its own; a .ism set: the .ism's, then each member's in .ism order) and the segment target
    in seconds. Same inputs, same token, on every node."""
    text = "\0".join((FORMAT_TOKEN, str(target_s), *validators))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:VERSION_DIGITS]


def versioned(template: str, version: str) -> str:
    """A track URL template with `version` before its file name: "cmaf1/$RepresentationID$/init.mp4" ->
    "cmaf1/$RepresentationID$/<version>/init.mp4", "$Number$.m4s" -> "<version>/$Number$.m4s"."""
    head, _, name = template.rpartition("/")
    return f"{head}/{version}/{name}" if head else f"{version}/{name}"


def representation_id(handler_type: bytes, track_id: int) -> str:
    """"v<track_ID>" for video, "a<track_ID>" for audio."""
    return ("v" if handler_type == b"vide" else "a") + str(track_id)


def track_resource(rep_id: str, name: str) -> str:
    """Relative URI of a track resource from the base, e.g. track_resource("v1", "init.mp4") -> "cmaf1/v1/init.mp4"."""
    return f"{FORMAT_TOKEN}/{rep_id}/{name}"
