"""Request path (+ Host) -> SourceRef, with Apache Traffic Server `map` semantics. Pure: no I/O.

The longest matching `from` prefix wins (rules limited to a Host are preferred over host-less rules); the rest of
the path after the prefix is appended to `to`. No match is NotFound.

Security (never serve outside a file: root, never an open proxy):
- the raw (still percent-encoded) path is refused with Forbidden when it holds a backslash, a NUL, a percent-encoded
  dot, slash, backslash or NUL at any encoding depth (`%2e`, `%2F`, `%5c`, `%00`, `%252e` ...), or a `.`/`..`
  segment once decoded;
- an HTTP target gets the rest re-quoted, so it can only add path segments below the configured prefix; the built
  URL is checked to keep the target's scheme, host and prefix;
- symlinks leaving a file: root are caught by store/source/local.py, which resolves the real path (it needs the disk).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from .config import RemapRule
from .errors import BadRequest, Forbidden, NotFound

# %2e . | %2f / | %5c \ | %00 NUL, behind any number of %25 (an encoded '%') layers.
_ENCODED_SPECIAL = re.compile(r"%(?:25)*(?:2e|2f|5c|00)", re.IGNORECASE)
# What may stay literal in an upstream path segment (RFC 3986 pchar minus '%'), '/' separating segments.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


@dataclass(frozen=True)
class SourceRef:
    """Where one request's object lives.

    Attributes:
        rule: the remap rule that matched.
        rest: decoded path after the rule's prefix, e.g. "movies/a.mp4" ('' when the prefix itself was asked).
        location: upstream URL (percent-encoded) for HTTP rules, or the filesystem path for file: rules ('' for
            live and relay rules, whose handlers read `rest`).
        identity: stable key of the object (the URL, or "file://" + path), used for cache keys and ETags.
    """

    rule: RemapRule
    rest: str
    location: str
    identity: str

    @property
    def is_local(self) -> bool:
        return self.rule.is_local


_RESOLVED_MAX = 4096  # (raw path, host) -> SourceRef results a table keeps (every request of a path repeats them)


class RemapTable:
    """The rules, ordered for matching: host-limited first, then by decreasing prefix length.

    `resolve` is pure, so a table remembers its last _RESOLVED_MAX successful results (a new table on reload
    starts empty); refusals are not remembered, they are computed again each time."""

    def __init__(self, rules: Iterable[RemapRule]) -> None:
        self.rules = sorted(rules, key=lambda r: (r.host is None, -len(r.prefix)))
        self._resolved: dict[tuple[str, str | None], SourceRef] = {}

    def resolve(self, raw_path: str, host: str | None = None) -> SourceRef:
        """Map a request to its object.

        Args:
            raw_path: the request path exactly as received, percent-encoding intact, without the query.
            host: the Host header value (`name[:port]`), or None.
        Raises:
            BadRequest: the path does not decode to UTF-8.
            Forbidden: the path tries to escape its root (see module docstring).
            NotFound: no rule matches.
        """
        key = (raw_path, host)
        ref = self._resolved.get(key)
        if ref is None:
            ref = self._resolve(raw_path, host)
            if len(self._resolved) >= _RESOLVED_MAX:
                self._resolved.pop(next(iter(self._resolved)))  # the oldest first
            self._resolved[key] = ref
        return ref

    def _resolve(self, raw_path: str, host: str | None) -> SourceRef:
        path = safe_decoded_path(raw_path)
        host_key = host.lower() if host else None
        for rule in self.rules:
            if rule.host is not None and rule.host != host_key:
                continue
            rest = _strip_prefix(path, rule.prefix)
            if rest is not None:
                return _target(rule, rest)
        raise NotFound("no remap rule for this path", path=path, host=host)


def safe_decoded_path(raw_path: str, max_decodes: int = 4) -> str:
    """The path percent-decoded once, after refusing every traversal trick. Raises Forbidden or BadRequest.

    The checks run on the raw path and on each further decoding of it (up to `max_decodes`), so an upstream that
    decodes twice cannot be walked out of its prefix either (`%25%32%65` -> `%2e` -> `.`).
    """
    if not raw_path.startswith("/"):
        raise Forbidden("path must start with '/'", path=raw_path)
    level, decoded_once = raw_path, None
    for _ in range(max_decodes):
        if "\\" in level or any(ord(ch) < 0x20 for ch in level) or _ENCODED_SPECIAL.search(level):
            raise Forbidden("path holds an encoded dot, slash, backslash or control character", path=raw_path)
        if any(segment in (".", "..") for segment in level.split("/")):
            raise Forbidden("path holds a '.' or '..' segment", path=raw_path)
        try:
            decoded = unquote(level, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("path is not UTF-8 once percent-decoded", path=raw_path) from None
        decoded_once = decoded if decoded_once is None else decoded_once
        if decoded == level:
            return decoded_once
        level = decoded
    raise Forbidden("path is percent-encoded too many times", path=raw_path)


def _strip_prefix(path: str, prefix: str) -> str | None:
    """The path after `prefix`, or None. A prefix without a trailing '/' only matches whole segments."""
    if prefix.endswith("/"):
        return path[len(prefix) :] if path.startswith(prefix) else None
    if path == prefix:
        return ""
    return path[len(prefix) + 1 :] if path.startswith(prefix + "/") else None


def _target(rule: RemapRule, rest: str) -> SourceRef:
    rest = rest.lstrip("/")
    if rule.to is None:  # a live or relay rule: the handler reads `rest` (NAME.isml/..., NAME.mkv)
        return SourceRef(rule, rest, "", f"{rule.kind}:{rule.from_}{rest}")
    if rule.is_local:
        root = rule.root_dir
        location = os.path.join(root, *[seg for seg in rest.split("/") if seg]) if rest else root
        return SourceRef(rule, rest, location, "file://" + location)
    base = rule.to if rule.to.endswith("/") or not rest else rule.to + "/"
    url = base + quote(rest, safe=_PATH_SAFE)
    built, want = urlsplit(url), urlsplit(rule.to)
    # Belt and braces: the appended rest must never change scheme, host or leave the prefix.
    if (built.scheme, built.netloc) != (want.scheme, want.netloc) or not built.path.startswith(want.path):
        raise Forbidden("path would leave the upstream prefix", path=rest)
    if built.query or built.fragment:
        raise Forbidden("path would add a query to the upstream URL", path=rest)
    return SourceRef(rule, rest, url, url)
