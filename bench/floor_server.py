"""The floor under origin_proxy's `?start=` TTFB: a bare aiohttp handler that answers every GET with the same
64 KiB 206 response origin_proxy sends for `Range: bytes=0-65535`, doing no media work at all. Measured against
nginx like origin_proxy is, it shows how much of origin_proxy's time is the HTTP stack rather than the seek.

Run as `python -m bench.floor_server PORT`.
"""

from __future__ import annotations

import sys

from aiohttp import web

BODY = bytes(65536)


async def answer(request: web.Request) -> web.Response:
    return web.Response(body=BODY, status=206, content_type="video/mp4",
                        headers={"Content-Range": f"bytes 0-65535/{1 << 30}", "Accept-Ranges": "bytes",
                                 "ETag": '"floor"', "Cache-Control": "max-age=86400"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
