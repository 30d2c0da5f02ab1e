"""Server manifests (`.ism`) of multi-bitrate sets (DESIGN.md §5). Pure: the .ism bytes in, a ServerManifest out.

A server manifest is a SMIL 2.0 document whose `body/switch` lists the tracks of one presentation, each a
`<video>` or `<audio>` element with `src` (an MP4, relative to the .ism), `systemBitrate` (bits/s) and
optionally `<param name="trackID" value="N"/>` (without it: the file's first track of that kind).
Other `switch` children (textstream ...) and `head` are ignored.

Safety: the .ism comes from our upstream, but we still treat it as hostile. It is bounded in size before any
parsing; a DOCTYPE or ENTITY declaration (the door to entity expansion and external entities) is refused before
expat sees the bytes; `src` must be a plain relative path below the .ism's folder (no scheme, no leading '/',
no '.', '..' or empty segment, no backslash or control character). Every refusal is MalformedMedia (502: a
broken .ism is our upstream's fault), a too-large file UnsupportedMedia (501).

Track tokens: entry n (1-based, in document order over the video and audio elements) is named "v<n>" or "a<n>"
in URLs and as the DASH Representation@id, e.g. `base.ism/cmaf1/v2/3.m4s` is segment 3 of the second entry.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal

from ..errors import MalformedMedia, UnsupportedMedia

MAX_ISM_BYTES = 256 * 1024
MAX_SWITCH_ENTRIES = 64
SMIL_NAMESPACE = "http://www.w3.org/2001/SMIL20/Language"
ISM_SUFFIX = ".ism"

# "<!" starts a declaration; only comments and CDATA sections are allowed (no DOCTYPE, ENTITY, ELEMENT ...).
_DECLARATION = re.compile(rb"<!(?!--|\[CDATA\[)")
_UNSAFE_SRC = re.compile(r"[\x00-\x1f\x7f\\:?#]")

EntryKind = Literal["video", "audio"]


@dataclass(frozen=True)
class SwitchEntry:
    """One `<video>`/`<audio>` element of the switch.

    Attributes:
        position: 1-based position among the switch's video and audio elements (the URL token's number).
        kind: "video" or "audio".
        src: the MP4's path relative to the .ism's folder, e.g. "movie_1000k.mp4" or "hd/movie.mp4".
        system_bitrate_bps: the declared bitrate (0 when absent).
        track_id: the source track_ID, or None for the file's first track of `kind`.
    """

    position: int
    kind: EntryKind
    src: str
    system_bitrate_bps: int
    track_id: int | None

    @property
    def representation_id(self) -> str:
        return ("v" if self.kind == "video" else "a") + str(self.position)


@dataclass(frozen=True)
class ServerManifest:
    """The switch of one .ism, in document order."""

    entries: tuple[SwitchEntry, ...]

    @property
    def nbytes(self) -> int:
        return 256 + sum(128 + len(e.src) for e in self.entries)

    @property
    def sources(self) -> list[str]:
        """The distinct srcs, in order of first appearance."""
        return list(dict.fromkeys(e.src for e in self.entries))

    def entry(self, rep_id: str) -> SwitchEntry:
        """The entry a URL token ("v2", "a4") names. Raises KeyError."""
        for entry in self.entries:
            if entry.representation_id == rep_id:
                return entry
        raise KeyError(rep_id)


def is_ism_path(path: str) -> bool:
    return path.lower().endswith(ISM_SUFFIX)


def _local(tag: str) -> str:
    """Element name without a namespace: "{ns}video" -> "video"."""
    return tag.rsplit("}", 1)[-1]


def check_src(src: str) -> str:
    """`src` if it is a plain relative path below the .ism's folder. Raises MalformedMedia."""
    if not src or src.startswith("/") or _UNSAFE_SRC.search(src):
        raise MalformedMedia("the .ism names a source that is not a relative path", src=src)
    if any(segment in ("", ".", "..") for segment in src.split("/")):
        raise MalformedMedia("the .ism names a source outside its folder", src=src)
    return src


def parse_ism(data: bytes) -> ServerManifest:
    """Parse a server manifest.

    Args:
        data: the whole .ism file.
    Returns:
        Its switch entries; at least one video or audio element.
    Raises:
        UnsupportedMedia: more than MAX_ISM_BYTES, or more than MAX_SWITCH_ENTRIES entries.
        MalformedMedia: not well-formed XML, a DTD declaration, no switch, a bad src, bitrate or trackID.
    """
    if len(data) > MAX_ISM_BYTES:
        raise UnsupportedMedia(f"the .ism is larger than {MAX_ISM_BYTES} bytes", size_bytes=len(data))
    if _DECLARATION.search(data):
        raise MalformedMedia("the .ism holds a DOCTYPE or other declaration; refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise MalformedMedia("the .ism is not well-formed XML", reason=str(exc)) from None
    if _local(root.tag) != "smil":
        raise MalformedMedia("the .ism is not a SMIL document", root=root.tag)
    switch = next((el for el in root.iter() if _local(el.tag) == "switch"), None)
    if switch is None:
        raise MalformedMedia("the .ism has no switch element")
    entries: list[SwitchEntry] = []
    for element in switch:
        kind = _local(element.tag)
        if kind not in ("video", "audio"):
            continue
        if len(entries) >= MAX_SWITCH_ENTRIES:
            raise UnsupportedMedia(f"the .ism lists more than {MAX_SWITCH_ENTRIES} tracks")
        src = check_src(element.get("src", ""))
        bitrate_text = element.get("systemBitrate", element.get("system-bitrate", "0"))
        track_text = next((p.get("value", "") for p in element if _local(p.tag) == "param"
                           and p.get("name") == "trackID"), None)
        if not re.fullmatch(r"[0-9]{1,12}", bitrate_text):
            raise MalformedMedia("the .ism has a bad systemBitrate", value=bitrate_text)
        if track_text is not None and (not re.fullmatch(r"[0-9]{1,10}", track_text)
                                       or not 0 < int(track_text) < 2**32):
            raise MalformedMedia("the .ism has a bad trackID", value=track_text)
        entries.append(SwitchEntry(len(entries) + 1, kind, src, int(bitrate_text),
                                   int(track_text) if track_text is not None else None))
    if not entries:
        raise MalformedMedia("the .ism switch lists no video or audio track")
    return ServerManifest(tuple(entries))
