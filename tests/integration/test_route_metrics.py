"""`/metrics` counts every kind of request under its own route label (server/routes.py): HLS master and media
playlists, the MPD, CMAF init and segments, the Smooth manifest and fragments, clips and passthrough, health and
metrics; an unmapped path's 404 and a POST on a VOD rule too. The counters are process-wide, so the test reads
them before and after its requests and checks the differences."""

from __future__ import annotations

import re
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

FILE = "/files/mp4/sample_with_increasing_timestamps_320w_240h_5s.mp4"


async def _counts(client) -> Counter:
    text = await (await client.get("/metrics")).text()
    counts: Counter = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "origin_proxy_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[(sample.labels["route"], sample.labels["status"])] += int(sample.value)
    return counts


async def test_every_route_has_its_own_label(edge):
    client = edge.client
    before = await _counts(client)
    manifest = await (await client.get(f"{FILE}/Manifest")).text()
    fragment_time = re.search(r'<c t="(\d+)"', manifest).group(1)
    bitrate = re.search(r'Bitrate="(\d+)"', manifest).group(1)
    requests = {
        f"{FILE}/master.m3u8": "hls_master", f"{FILE}/.m3u8": "hls_master",
        f"{FILE}/cmaf1/v1/playlist.m3u8": "hls_playlist", f"{FILE}/manifest.mpd": "dash_mpd",
        f"{FILE}/cmaf1/v1/init.mp4": "cmaf_init", f"{FILE}/cmaf1/v1/1.m4s": "cmaf_segment",
        f"{FILE}/cmaf1/a2/1.m4s": "cmaf_segment",
        f"{FILE}/QualityLevels({bitrate})/Fragments(video={fragment_time})": "smooth_fragment",
        f"{FILE}?start=1&end=2": "media_clip", FILE: "media_passthrough", "/healthz": "healthz",
    }
    for path, label in requests.items():
        resp = await client.get(path)
        assert resp.status == 200, (path, resp.status)
        await resp.read()
    assert (await client.get("/nowhere/x.mp4")).status == 404
    assert (await client.post(FILE)).status == 405
    after = await _counts(client)
    grown = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    expected = Counter((label, "200") for label in requests.values())
    expected[("smooth_manifest", "200")] += 1
    expected[("metrics", "200")] += 1  # the first scrape, counted once it was answered
    expected[("media_passthrough", "404")] += 1
    expected[("other", "405")] += 1
    assert grown == dict(expected)


def _upstream_totals(text: str) -> tuple[float, float]:
    requests = body = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "origin_proxy_upstream_requests_total":
                requests += sample.value
            elif sample.name == "origin_proxy_upstream_body_bytes_total":
                body += sample.value
    return requests, body


async def test_upstream_reads_are_counted(edge):
    client = edge.client
    before = _upstream_totals(await (await client.get("/metrics")).text())
    body = await (await client.get("/up/mp4/sample.mp4")).read()
    after = _upstream_totals(await (await client.get("/metrics")).text())
    assert after[0] > before[0] and after[1] - before[1] >= len(body) > 0


async def test_the_cache_holds_only_typed_catalog_keys(edge):
    from origin_proxy.server.state import EDGE_STATE
    from origin_proxy.store.catalog import ManifestKey, MovieKey, PackagingKey, SmoothKey

    client = edge.client
    for path in ("master.m3u8", "manifest.mpd", "Manifest", "cmaf1/v1/1.m4s"):
        assert (await client.get(f"{FILE}/{path}")).status == 200
    assert (await client.get(f"{FILE}?start=1")).status == 200
    keys = client.server.app[EDGE_STATE].cache.keys()
    kinds = {type(key) for key in keys}
    assert kinds == {MovieKey, PackagingKey, SmoothKey, ManifestKey}, keys
    assert sorted(k.kind for k in keys if isinstance(k, ManifestKey)) == ["master", "mpd", "smooth"]
    assert {k.source.identity for k in keys if isinstance(k, MovieKey)} == {k.presentation.source.identity
                                                                           for k in keys if isinstance(k, ManifestKey)}
