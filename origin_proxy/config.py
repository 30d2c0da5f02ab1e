"""Configuration: the service settings file and the remap file, as frozen pydantic v2 models (DESIGN.md §8).

Two YAML files:
- the service config (`conf/origin-proxy.yaml`): listen address, cache, parser limits, upstream timeouts;
- the remap file: an ordered list of `from` (path prefix, optionally `http://host/prefix/`) -> `to` (an HTTP(S)
  upstream or a `file:` directory) rules, with ATS `map` semantics (see remap.py).

A relative `file:` target (`to: file:demo/media/`) is resolved against the directory holding the remap file.
Every validation error is reported with its place in the file (`remap[1].to: ...`) through ConfigError;
nothing here imports aiohttp.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .store.limits import MediaLimits


class ConfigError(Exception):
    """A config file that cannot be used. `errors` holds one "place: reason" line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(errors))
        self.source = source
        self.errors = errors


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------------------------- remap file


# Names of publishing points and relay feeds (the part before .isml / .mkv).
POINT_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _read_token(token: str | None, token_file: str | None, base_dir: Any) -> str | None:
    """The bearer token of a rule: inline, or the first line of `token_file` (relative to the remap file)."""
    if token is not None and token_file is not None:
        raise ValueError("give a token or a token file, not both")
    if token_file is None:
        return token
    path = token_file if os.path.isabs(token_file) or base_dir is None else os.path.join(os.fspath(base_dir), token_file)
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.readline().strip()
    except OSError as exc:
        raise ValueError(f"cannot read token file {path}: {exc.strerror}") from None
    if not value:
        raise ValueError(f"token file {path} is empty")
    return value


class LiveSettings(_Frozen):
    """A rule's `live:` block: publishing points `NAME.isml` under this prefix (DESIGN.md §6, docs/live.md).

    Attributes:
        storage: directory holding one NAME.isml directory per point (archive, server manifest); relative paths
            resolve against the remap file's directory. Created when missing.
        ingest_token: encoders send `Authorization: Bearer <token>`; `ingest_token_file` reads it from a file
            instead (its first line). Neither = ingest is refused (403): a live rule never accepts anonymous pushes.
        create_on_ingest: False = only points whose NAME.isml directory exists accept pushes (404 otherwise).
        dvr_window_s: live manifests list at most this much media; older fragments leave memory.
        archive: every accepted fragment is written to disk before any manifest lists it.
        archive_segment_s: archive files rotate after this much media; 0 = one file per stream.
        restart_on_encoder_reconnect: a timeline that jumps back starts a new period/discontinuity instead of 400.
        fsync: fsync each archived fragment before acknowledging it (flush only when False).
        cache_control_live_manifests: Cache-Control of live manifests (None: max-age of half a fragment).
    """

    storage: str
    ingest_token: str | None = None
    ingest_token_file: str | None = None
    create_on_ingest: bool = True
    dvr_window_s: float = Field(1800.0, gt=0)
    archive: bool = True
    archive_segment_s: float = Field(3600.0, ge=0)
    restart_on_encoder_reconnect: bool = False
    fsync: bool = False
    cache_control_live_manifests: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        base_dir = (info.context or {}).get("base_dir")
        storage = data.get("storage")
        if isinstance(storage, str) and storage and not os.path.isabs(storage):
            if base_dir is None:
                raise ValueError("relative live storage but the remap file's directory is unknown")
            data["storage"] = os.path.abspath(os.path.join(os.fspath(base_dir), storage))
        token = _read_token(data.get("ingest_token"), data.pop("ingest_token_file", None), base_dir)
        data["ingest_token"] = token
        return data


class RelaySettings(_Frozen):
    """A rule's `relay:` block: live Matroska (and fMP4) feeds `NAME.mkv` fanned out to viewers (docs/relay.md).

    Attributes:
        publish_token: publishers send `Authorization: Bearer <token>` (or `publish_token_file`); neither = pushes
            are refused (403); pulled `feeds` and the CLI need no token.
        backlog_gops: complete GOPs a new viewer gets before the live edge (0 = wait for the next key frame).
        viewer_buffer_s: a viewer further behind than this loses whole GOPs.
        viewer_max_lag_s: a viewer still this far behind is disconnected.
        low_latency: send each cluster as it arrives instead of each whole GOP.
        feeds: name -> http(s) URL of feeds origin_proxy pulls itself (reconnecting with backoff).
    """

    publish_token: str | None = None
    publish_token_file: str | None = None
    backlog_gops: int = Field(2, ge=0, le=64)
    viewer_buffer_s: float = Field(10.0, gt=0)
    viewer_max_lag_s: float = Field(60.0, gt=0)
    low_latency: bool = False
    feeds: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        base_dir = (info.context or {}).get("base_dir")
        data["publish_token"] = _read_token(data.get("publish_token"), data.pop("publish_token_file", None), base_dir)
        return data

    @field_validator("feeds")
    @classmethod
    def _check_feeds(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not POINT_NAME.fullmatch(name):
                raise ValueError(f"feed name {name!r} must be [A-Za-z0-9_.-]+")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"feed {name}: must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _check_lag(self) -> RelaySettings:
        if self.viewer_max_lag_s < self.viewer_buffer_s:
            raise ValueError("viewer_max_lag_s must be at least viewer_buffer_s")
        return self


class RemapRule(_Frozen):
    """One `from` -> `to` mapping.

    Attributes:
        from_: "/prefix/" or "http://host[:port]/prefix/" (then the Host header must match too).
        to: "http(s)://host[:port]/prefix/" or "file:///absolute/dir/" (relative `file:dir/` is resolved at load).
        mode: default pseudo-streaming mode for this rule ("exact" or "keyframe"); None = the global default.
        cache_control: Cache-Control for responses of this rule; None = the service default.
        segment_duration_s: target segment duration of fragment-on-demand (HLS/DASH) under this rule; segments
            start at the first key frame at or after each multiple (DESIGN.md §5).
        live: publishing points under this prefix (LiveSettings) instead of a `to` upstream.
        relay: live relay feeds under this prefix (RelaySettings) instead of a `to` upstream.
    A rule has exactly one of `to`, `live` and `relay`.
    """

    from_: str = Field(alias="from")
    to: str | None = None
    live: LiveSettings | None = None
    relay: RelaySettings | None = None
    mode: Literal["exact", "keyframe"] | None = None
    cache_control: str | None = None
    segment_duration_s: float = Field(4.0, ge=0.5, le=60.0)

    @field_validator("from_")
    @classmethod
    def _check_from(cls, value: str) -> str:
        if value.startswith("/"):
            path = value
        else:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be a path starting with '/' or http://host/prefix/")
            if parts.query or parts.fragment:
                raise ValueError("must not carry a query or fragment")
            path = parts.path or "/"
        if "\\" in path or "%" in path or any(seg in (".", "..") for seg in path.split("/")):
            raise ValueError("prefix must be a plain path (no '.', '..', '%' or '\\')")
        return value

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError("an http(s) target needs a host")
            if parts.query or parts.fragment:
                raise ValueError("must not carry a query or fragment")
            return value
        if parts.scheme != "file":
            raise ValueError("must be an http://, https:// or file: URL")
        if parts.netloc not in ("", "localhost"):
            raise ValueError("a file: target cannot name a host")
        path = parts.path
        if not path:
            raise ValueError("a file: target needs a directory")
        if not os.path.isabs(path):  # file:demo/media/ -> relative to the remap file's directory
            base_dir = (info.context or {}).get("base_dir")
            if base_dir is None:
                raise ValueError("relative file: target but the remap file's directory is unknown")
            path = os.path.join(os.fspath(base_dir), path)
        path = os.path.abspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"directory {path} does not exist")
        return "file://" + path.rstrip("/") + "/"

    @model_validator(mode="after")
    def _exactly_one_target(self) -> RemapRule:
        given = [name for name in ("to", "live", "relay") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a rule needs exactly one of 'to', 'live' or 'relay'"
                             + (f" (has {', '.join(given)})" if given else ""))
        return self

    @property
    def kind(self) -> Literal["upstream", "live", "relay"]:
        """What serves this rule: a `to` upstream, publishing points, or relay feeds."""
        return "live" if self.live is not None else "relay" if self.relay is not None else "upstream"

    @property
    def host(self) -> str | None:
        """Lower-case `host[:port]` this rule is limited to, or None for any Host."""
        return None if self.from_.startswith("/") else urlsplit(self.from_).netloc.lower()

    @property
    def prefix(self) -> str:
        """The path prefix of `from`."""
        return self.from_ if self.from_.startswith("/") else (urlsplit(self.from_).path or "/")

    @property
    def is_local(self) -> bool:
        return self.to is not None and self.to.startswith("file:")

    @property
    def root_dir(self) -> str:
        """Filesystem directory of a file: target (ends without '/'). Only for is_local rules."""
        return urlsplit(self.to).path.rstrip("/") or "/"


class RemapConfig(_Frozen):
    """The remap file: `remap:` followed by at least one rule, in any order (longest prefix wins)."""

    remap: tuple[RemapRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_from(self) -> RemapConfig:
        seen: set[str] = set()
        for rule in self.remap:
            if rule.from_ in seen:
                raise ValueError(f"'from: {rule.from_}' appears twice")
            seen.add(rule.from_)
        return self


# ---------------------------------------------------------------------------------------------- service file


class ListenSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class CacheSettings(_Frozen):
    metadata_ttl_s: float = Field(300.0, gt=0)  # seconds a parsed moov stays cached
    max_bytes: int = Field(256 * 1024 * 1024, gt=0)  # memory bound of the metadata cache, in bytes
    # generated heads (clip moov, init segments, fragment heads; store/heads.py), shared by every response
    head_max_bytes: int = Field(256 * 1024 * 1024, gt=0)  # memory bound of the head cache, in bytes
    head_ttl_s: float = Field(300.0, gt=0)  # seconds a built head stays cached
    build_threads: int = Field(2, ge=0, le=64)  # threads that build heads off the event loop; 0 = on the loop
    # CPU seconds of head builds one event-loop iteration may run on the loop instead of the build threads (a
    # build goes there when its kind's recent cost fits in what is left); 0 = always in the build threads
    inline_build_budget_s: float = Field(0.002, ge=0, le=1)
    # local files: a recent checked open's real path and inode, reused (after stat + open + fstat on the loop show
    # the same inode, size and mtime) instead of a thread hop; at most this many paths, each for known_file_ttl_s
    known_files: int = Field(4096, ge=0)  # 0 = every open is the full check in a thread
    known_file_ttl_s: float = Field(10.0, gt=0)


class LimitsSettings(_Frozen):
    max_moov_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_samples: int = Field(20_000_000, gt=0)
    head_bytes: int = Field(64 * 1024, ge=16)
    max_tracks: int = Field(256, gt=0)

    def media_limits(self) -> MediaLimits:
        return MediaLimits(self.max_moov_bytes, self.max_samples, self.head_bytes, self.max_tracks)


class UpstreamSettings(_Frozen):
    connect_timeout_s: float = Field(5.0, gt=0)  # TCP (+TLS) connect
    read_timeout_s: float = Field(30.0, gt=0)  # longest silence while waiting for headers or body bytes
    connections_per_host: int = Field(32, ge=1)
    # seconds what an object's `bytes=0-0` open learned (length, ETag) is reused; 0 = ask on every request
    version_ttl_s: float = Field(2.0, ge=0)


class RedisSettings(_Frozen):
    """Optional shared L2 metadata cache (store/redis_cache.py); off while `url` is None."""

    url: str | None = None  # redis://host:port/db or rediss://...
    key_prefix: str = "op:"
    ttl_s: float = Field(3600.0, gt=0)  # seconds a stored moov lives in Redis
    lock_ttl_s: float = Field(30.0, gt=0)  # fill lock lifetime; also how long other nodes wait for the filler
    timeout_s: float = Field(0.2, gt=0)  # bound on one Redis call; slower = degrade to L1 only

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class CorsSettings(_Frozen):
    """CORS for GET/HEAD/OPTIONS of media and manifests (server/cors.py; docs/edges.md "CORS").

    `cors: off` (or `enabled: false`) sends no CORS header and leaves OPTIONS to the handlers (405 on media).
    `allow_origins`: "*" (the default: the same answer for every page, so shared caches need no Vary), or a list
    of origins ("https://player.example.com"), answered with the matching origin and `Vary: Origin`.
    `max_age_s`: how long a browser may reuse a preflight answer.
    """

    enabled: bool = True
    allow_origins: Literal["*"] | tuple[str, ...] = "*"
    max_age_s: int = Field(86400, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        # `cors: off` is YAML false: CORS disabled.
        if value is False or value == "off":
            return {"enabled": False}
        return value


class MallocSettings(_Frozen):
    """glibc malloc thresholds set at start (server/malloc.py, mallopt(3)); 0 = glibc's own (dynamic) default.

    `mmap_threshold_bytes`: blocks up to this size come from the heap and are reused, not mmapped and faulted in
    again on every cold parse (glibc's ceiling is 32 MiB on 64-bit). `trim_threshold_bytes`: free memory above
    this at the top of a heap goes back to the kernel.
    """

    mmap_threshold_bytes: int = Field(32 * 1024 * 1024, ge=0, le=32 * 1024 * 1024)
    trim_threshold_bytes: int = Field(64 * 1024 * 1024, ge=0, le=2**31 - 1)


class ServiceConfig(_Frozen):
    """The service config file. Every field has a default, so an empty file is valid.

    Operations (DESIGN.md §8): `workers` processes share the listen port (SO_REUSEPORT), each with its own
    caches; `shutdown_timeout_s` bounds the drain of in-flight responses on SIGTERM/SIGINT; `access_log` is
    off, aiohttp's plain line, or one JSON object per request. SIGHUP reloads `remap`, `cache_control` and
    `default_mode`; every other setting needs a restart.
    """

    listen: ListenSettings = ListenSettings()
    workers: int = Field(1, ge=1, le=256)  # serving processes; --workers overrides
    shutdown_timeout_s: float = Field(30.0, gt=0)  # seconds in-flight responses may take to finish on SIGTERM
    keepalive_timeout_s: float = Field(75.0, gt=0)  # an idle keep-alive connection is closed after this long
    access_log: Literal["off", "plain", "json"] = "plain"
    # largest generated slice written at once, and each connection's transport high-water mark (server/body.py)
    write_slice_bytes: int = Field(32 * 1024, ge=4096, le=16 * 1024 * 1024)
    # the event loop (server/run.py): asyncio's own; `uvloop` (`pip install origin-proxy[speed]`; refuses to start
    # without it) or `auto` (uvloop when installed). uvloop has no loop.sendfile: whole files then go out with
    # preads and writes (about a third of the sendfile speed). --event-loop overrides
    event_loop: Literal["auto", "asyncio", "uvloop"] = "asyncio"
    malloc: MallocSettings = MallocSettings()

    @field_validator("access_log", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` as false: take it as the "off" the docs tell operators to write.
        return "off" if value is False else value
    remap: str | None = None  # path of the remap file, relative to this file's directory
    cache: CacheSettings = CacheSettings()
    limits: LimitsSettings = LimitsSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    redis: RedisSettings = RedisSettings()
    cors: CorsSettings = CorsSettings()
    # Freshness lifetimes (docs/edges.md "Freshness"). Files and clips: one object per URL with a strong ETag;
    # a replaced source reaches viewers when this expires (caches revalidate with If-None-Match and get the new
    # ETag), and Range requests carry If-Range, so pieces of two versions are never joined.
    cache_control: str = "public, max-age=86400"
    # Fragment-on-demand: an init/segment/fragment URL names the source version (package/urls.py version token),
    # so its bytes never change: immutable. The same resources under an unversioned URL get the manifests'.
    cache_control_segments: str = "public, max-age=31536000, immutable"
    # VOD manifests name the version the segments come from: short-lived so a replaced source reaches players
    # (and the old version's segment URLs, answered 410, stop being handed out) within this many seconds.
    cache_control_manifests: str = "public, max-age=10"
    default_mode: Literal["exact", "keyframe"] = "exact"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AppConfig(_Frozen):
    """Everything make_app needs: the service settings and the remap rules."""

    service: ServiceConfig
    remap: RemapConfig


# ---------------------------------------------------------------------------------------------- loading


def error_lines(exc: ValidationError) -> list[str]:
    """One "remap[1].to: reason" line per pydantic error, the place rebuilt from its `loc`."""
    lines = []
    for err in exc.errors():
        place = ""
        for item in err["loc"]:
            if isinstance(item, int):
                place += f"[{item}]"
            else:
                place += ("." if place else "") + ("from" if item == "from_" else str(item))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "too_short" and tuple(err["loc"]) == ("remap",):
            if err.get("input"):  # rules were given but failed: their own lines say why
                continue
            message = "the list of rules is empty: give at least one `from:`/`to:` rule (see remap.example.yaml)"
        lines.append(f"{place or '(top)'}: {message}")
    return lines


def _read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}".replace("\n", " ")]) from None


def _validate(model: type[_Frozen], data: Any, source: str, context: Mapping[str, Any] | None = None):
    try:
        return model.model_validate({} if data is None else data, context=dict(context or {}))
    except ValidationError as exc:
        raise ConfigError(source, error_lines(exc)) from None


def parse_remap(data: Any, base_dir: str | Path, source: str = "<remap>") -> RemapConfig:
    """Validate an already-decoded remap document; relative file: targets are resolved against base_dir."""
    return _validate(RemapConfig, data, source, {"base_dir": Path(base_dir)})


def load_remap(path: str | Path) -> RemapConfig:
    """Read and validate a remap YAML file. Raises ConfigError listing every problem."""
    path = Path(path)
    return parse_remap(_read_yaml(path), path.parent.resolve(), str(path))


def load_service(path: str | Path) -> ServiceConfig:
    """Read and validate the service YAML file. Raises ConfigError listing every problem."""
    return _validate(ServiceConfig, _read_yaml(Path(path)), str(path))


def load_config(config_path: str | Path | None, remap_path: str | Path | None = None) -> AppConfig:
    """The service file (defaults when None) plus the remap file (`remap_path`, else the one it names).

    Raises:
        ConfigError: unreadable or invalid file, or no remap file named anywhere.
    """
    service = load_service(config_path) if config_path is not None else ServiceConfig()
    if remap_path is None and service.remap is not None:
        remap_path = Path(config_path).parent / service.remap if config_path else Path(service.remap)
    if remap_path is None:
        raise ConfigError(str(config_path or "<config>"), ["remap: no remap file given (--remap or `remap:`)"])
    return AppConfig(service=service, remap=load_remap(remap_path))
