"""Fragment-on-demand on one movie (4 s segments, the rule's default): manifest times warm and cold, segments/s
with wrk, and the time of one media segment against ffmpeg `-c copy` packaging of the same span.

nginx has no fragment-on-demand, so the reference for a segment is ffmpeg: one `ffmpeg -ss T -i movie -t D
-map 0:v:0 -c copy -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof` process per segment, T and D
the segment's start and duration from our own media playlist.
"""
from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

from .harness import MEDIA, SEED, Client, Row, Server, log, wrk_rps

WRK_SEGMENTS_LUA = """
math.randomseed({seed})
request = function()
  return wrk.format("GET", "/vod/{movie}.mp4/cmaf1/{rep}/" .. math.random(1, {count}) .. ".m4s")
end
"""


def segment_starts(playlist: str) -> list[tuple[float, float]]:
    """(start_s, duration_s) of each segment of an HLS media playlist, from its EXTINF durations."""
    spans, t = [], 0.0
    for line in playlist.splitlines():
        if line.startswith("#EXTINF:"):
            d = float(line.removeprefix("#EXTINF:").split(",")[0])
            spans.append((t, d))
            t += d
    return spans


def ffmpeg_segment(movie: Path, start_s: float, duration_s: float, out: Path) -> float:
    """Wall seconds of one ffmpeg process that cuts [start_s, start_s + duration_s) of the first video track as
    fragmented MP4 with -c copy. 10 ms past the start keeps the input seek (key frame at or before -ss) on the
    segment's own key frame whatever the rounding of the EXTINF sums."""
    started = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{start_s + 0.01:.3f}", "-i", str(movie),
                    "-t", f"{duration_s:.6f}", "-map", "0:v:0", "-c", "copy", "-f", "mp4",
                    "-movflags", "frag_keyframe+empty_moov+default_base_moof", str(out)], check=True)
    return time.perf_counter() - started


def measure(op: Server, cold: Server, movie: str, tmp: Path, quick: bool, rounds: int) -> tuple[list[Row], dict]:
    """Returns the section's rows and facts for the prose (segment count, sizes)."""
    base = f"/vod/{movie}.mp4"
    warm_client, cold_client = Client(op.port), Client(cold.port)
    master = warm_client.get(f"{base}/master.m3u8").body.decode()
    video_rep = next(line.split("/")[1] for line in master.splitlines()
                     if line.startswith("cmaf1/v") and line.endswith("playlist.m3u8"))
    playlist_url = f"{base}/cmaf1/{video_rep}/playlist.m3u8"
    playlist = warm_client.get(playlist_url).body.decode()
    spans = segment_starts(playlist)
    urls = {"master.m3u8": f"{base}/master.m3u8", f"{video_rep} media playlist": playlist_url,
            "manifest.mpd": f"{base}/manifest.mpd"}
    sizes = {name: len(warm_client.get(url).body) for name, url in urls.items()}
    facts = {"movie": movie, "segments": len(spans), "video_rep": video_rep, "manifest_bytes": sizes}
    rows: list[Row] = []

    log(f"fragment-on-demand: manifests ({len(spans)} video segments)")
    warm_n, cold_n = (10, 4) if quick else (20, 8)
    warm: dict[str, list[float]] = {name: [] for name in urls}
    colds: dict[str, list[float]] = {name: [] for name in urls}
    for i in range(warm_n):
        for name, url in urls.items():
            warm_client.get(url)  # priming: the metadata, the packaging and (master, MPD) the rendered text
            warm[name].append(warm_client.get(url).total_s)
            if i < cold_n:
                colds[name].append(cold_client.get(url).total_s)
    for name in urls:
        rows.append(Row(f"{name}, warm (cache holds metadata and packaging), {movie}, whole body, {warm_n} "
                        f"requests ({sizes[name] / 1e3:.1f} kB)", "ms", warm[name], [], ref=""))
    for name in urls:
        rows.append(Row(f"{name}, cold (op cache off: moov read, parsed and packaged again), {movie}, "
                        f"{cold_n} requests", "ms", colds[name], [], ref=""))

    log("fragment-on-demand: one segment against ffmpeg -c copy")
    rng = random.Random(SEED + 11)
    picks = rng.sample(range(1, len(spans) + 1), 8 if quick else 20)
    seg_warm, seg_cold, seg_ffmpeg, seg_bytes = [], [], [], []
    out = tmp / "ffmpeg-segment.mp4"
    source = MEDIA / f"{movie}.mp4"
    for i, number in enumerate(picks):
        start_s, duration_s = spans[number - 1]
        url = f"{base}/cmaf1/{video_rep}/{number}.m4s"
        steps = ["warm", "ffmpeg", "cold"]
        for step in steps[i % 3:] + steps[: i % 3]:  # rotate the order every segment
            if step == "warm":
                answer = warm_client.get(url)
                seg_warm.append(answer.total_s)
                seg_bytes.append(len(answer.body))
            elif step == "cold":
                seg_cold.append(cold_client.get(url).total_s)
            else:
                seg_ffmpeg.append(ffmpeg_segment(source, start_s, duration_s, out))
    facts["segment_bytes"] = sorted(seg_bytes)[len(seg_bytes) // 2]
    facts["ffmpeg_segment_bytes"] = out.stat().st_size
    ffmpeg_cmd = ("ffmpeg -ss T -i movie -t D -map 0:v:0 -c copy -f mp4 "
                  "-movflags frag_keyframe+empty_moov+default_base_moof")
    rows.append(Row(f"one video segment ({video_rep}, 4 s), warm, whole body, {len(picks)} random segments; "
                    f"reference: `{ffmpeg_cmd}` of the same span, one process each",
                    "ms", seg_warm, seg_ffmpeg, ref="ffmpeg"))
    rows.append(Row("one video segment, cold (op parses the moov and packages again for each), same segments",
                    "ms", seg_cold, seg_ffmpeg, ref="ffmpeg"))

    log("fragment-on-demand: wrk segments/s")
    script = tmp / "segments.lua"
    script.write_text(WRK_SEGMENTS_LUA.format(seed=SEED, movie=movie, rep=video_rep, count=len(spans)))
    seconds = 10
    per_s = []
    for _ in range(rounds):
        per_s.append(wrk_rps(op, script, seconds))
        log(f"  origin_proxy: {per_s[-1]:.0f} segments/s")
    ffmpeg_rate = [1 / s for s in seg_ffmpeg]
    rows.append(Row(f"segments/s, wrk -t1 -c16 -d{seconds}s, random {video_rep} segment of {len(spans)}, warm, "
                    f"one process; reference: 1 / ffmpeg's time per segment above (one process at a time)",
                    "seg/s", per_s, ffmpeg_rate, better="higher", ref="ffmpeg"))
    warm_client.close()
    cold_client.close()
    return rows, facts
