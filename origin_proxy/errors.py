"""The OriginError tree. Core code raises these; only server/errors.py maps them to HTTP statuses.

```text
OriginError                      message is safe to show a client
├── BadRequest                   bad query values (start=abc, end <= start)
│   └── RangeNotSatisfiable      carries complete_length -> "Content-Range: bytes */N"
├── Forbidden                    a path that tries to leave its remap root
├── NotFound                     no remap rule; missing file upstream or on disk
├── MediaError                   the source bytes cannot be served
│   ├── MalformedMedia           sizes, counts or offsets that contradict each other
│   │   └── MalformedBox         ... located at a box path and file offset
│   └── UnsupportedMedia         valid but out of scope, or over a configured limit
│       ├── FragmentedMedia      fragmented MP4 input (moov/mvex) for a progressive-only feature
│       └── UnpackageableMedia   no track a packaging protocol can carry (mp4v, PCM only ...)
├── UpstreamError                upstream refused, reset, 5xx, or sent something else than asked
│   ├── UpstreamTimeout
│   └── SourceChanged            the upstream validator changed between metadata and body reads
│       └── VersionGone          a versioned segment URL names a version the source no longer has (410)
├── MethodNotAllowed             a method the resource does not take (viewers never write)
├── Conflict                     the resource is busy (a second publisher of one relay feed)
└── IngestError                  what an encoder or publisher pushed cannot be accepted (live/, relay/)
    ├── MalformedIngest          bytes that do not frame or contradict themselves (400)
    ├── IngestOutOfOrder         a fragment before any header (412)
    └── UnsupportedIngest        a codec or container we cannot package or relay (415)
```
`message` (str(exc)) is what a client may see; `context` is for the log only (box path, offsets, source id).
No aiohttp import here.
"""

from __future__ import annotations


class OriginError(Exception):
    """Base of every error we raise on purpose. str(exc) is a one-line message safe for clients."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class BadRequest(OriginError):
    pass


class RangeNotSatisfiable(BadRequest):
    def __init__(self, message: str, complete_length: int, **context: object) -> None:
        super().__init__(message, **context)
        self.complete_length = complete_length


class Forbidden(OriginError):
    pass


class NotFound(OriginError):
    pass


class MediaError(OriginError):
    pass


class MalformedMedia(MediaError):
    pass


class MalformedBox(MalformedMedia):
    """A box whose bytes contradict themselves or their container.

    Args:
        box_path: e.g. "moov/trak[1]/mdia/minf/stbl/stsz".
        reason: one line, e.g. "entry_count 4000000000 needs 16000000000 bytes, box has 12".
    """

    def __init__(self, box_path: str, reason: str, **context: object) -> None:
        super().__init__(f"malformed MP4: {box_path}: {reason}", box_path=box_path, **context)
        self.box_path = box_path


class UnsupportedMedia(MediaError):
    pass


class FragmentedMedia(UnsupportedMedia):
    pass


class UnpackageableMedia(UnsupportedMedia):
    pass


class UpstreamError(OriginError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class SourceChanged(UpstreamError):
    pass


class VersionGone(SourceChanged):
    """An init/segment/fragment URL whose version token (package/urls.py) is not the source's current one: the
    file was replaced after the manifest was made. Answered 410 with `Cache-Control: no-store` (a node that has
    not seen the new version yet must not make a cache keep the 410); reopened once first, like SourceChanged."""


class MethodNotAllowed(OriginError):
    """`allowed` lists the methods the resource takes, for the Allow header."""

    def __init__(self, message: str, allowed: tuple[str, ...] = ("GET", "HEAD"), **context: object) -> None:
        super().__init__(message, **context)
        self.allowed = allowed


class Conflict(OriginError):
    pass


class IngestError(OriginError):
    pass


class MalformedIngest(IngestError):
    pass


class IngestOutOfOrder(IngestError):
    pass


class UnsupportedIngest(IngestError):
    pass
