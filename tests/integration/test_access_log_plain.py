"""`access_log: plain` (the default) writes, for every request, the very line aiohttp's own AccessLogger makes
with its default format (server/observe.py PlainAccessLogger, which makes it cheaper): the oracle is aiohttp's
AccessLogger called with the same request, response and elapsed time. Requests: a clip, a Range of it, a HEAD,
a 304, a 404, with and without Referer and User-Agent.
"""

from __future__ import annotations

import datetime
import logging
import os

import aiohttp
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_log import AccessLogger

from conftest import MEDIA_ROOT, make_config
from origin_proxy.server.app import make_app
from origin_proxy.server.observe import PlainAccessLogger, configure_access_log

LOGGER = "test.access_log_plain"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class _Both(AbstractAccessLogger):
    """Logs each request twice to its own logger: with aiohttp's AccessLogger (the oracle), then PlainAccessLogger."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._aiohttp = AccessLogger(logger, AccessLogger.LOG_FORMAT)
        self._ours = PlainAccessLogger(logger, log_format)

    def log(self, request, response, time: float) -> None:
        self._aiohttp.log(request, response, time)
        self._ours.log(request, response, time)


def _split_stamp(line: str) -> tuple[str, str, str]:
    head, _, rest = line.partition(" [")
    stamp, _, tail = rest.partition("] ")
    return head, stamp, tail


def _seconds(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp()


async def test_plain_lines_are_aiohttps_default_lines(aiohttp_server):
    assert configure_access_log("plain") == {"access_log_class": PlainAccessLogger}
    logger = logging.getLogger(LOGGER)
    lines = _Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        config = make_config([{"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/"}])
        server = await aiohttp_server(make_app(config), access_log_class=_Both, access_log=logger)
        url = f"http://127.0.0.1:{server.port}/files/mp4/bbb_prog_10s.mp4"
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "?start=2.5", headers={"User-Agent": "probe/1.0"}) as resp:
                assert resp.status == 200
                etag = resp.headers["ETag"]
                await resp.read()
            async with session.get(url + "?start=2.5", headers={"Range": "bytes=100-9999",
                                                                "Referer": "https://player.example/p?a=1"}) as resp:
                assert resp.status == 206
                await resp.read()
            async with session.head(url) as resp:
                assert resp.status == 200
            async with session.get(url + "?start=2.5", headers={"If-None-Match": etag}) as resp:
                assert resp.status == 304
            async with session.get(f"http://127.0.0.1:{server.port}/files/missing.mp4") as resp:
                assert resp.status == 404
        await server.close()
    finally:
        logger.removeHandler(lines)
        logger.propagate = True
    assert len(lines.lines) == 10
    pairs = list(zip(lines.lines[0::2], lines.lines[1::2]))
    for theirs, ours in pairs:  # the start second may tick between the two calls: then 1 s apart, else equal
        (t_head, t_stamp, t_tail), (o_head, o_stamp, o_tail) = _split_stamp(theirs), _split_stamp(ours)
        assert (o_head, o_tail) == (t_head, t_tail)
        assert o_stamp == t_stamp or abs(_seconds(o_stamp) - _seconds(t_stamp)) <= 1
    assert [line.split('"')[2].split()[0] for line, _ in pairs] == ["200", "206", "200", "304", "404"]
    assert '"https://player.example/p?a=1"' in pairs[1][1] and '"probe/1.0"' in pairs[0][1]
