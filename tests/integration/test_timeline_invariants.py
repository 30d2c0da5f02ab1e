"""Timeline invariants of fragment-on-demand output (issue 3, DESIGN.md §5), for every valid file in
../shared/media/mp4 and mov (README: all are valid progressive inputs) and a generated 60 s H.264 (B-frames,
irregular GOPs, scene-cut detection on) + AAC movie, cut at 2 s so that even short files have boundaries.

Everything is fetched over HTTP from the test edge: the master playlist, the MPD, every media playlist, and every
track's init segment and all of its segments. The verdicts come from tools that share no code with origin_proxy:

- mp4box.js (GPAC; tests/mp4box_probe.mjs, one Node process per file) reads init + segments of every track (its
  codec string; per fragment tfdt, sample durations and sizes, composition offsets, sync flags) and the source
  file (its sample table);
- ffprobe reads init + segment for every video segment on its own, and the source with `-ignore_editlist 1`
  (sample sizes, decode times, the end of the last sample);
- the m3u8 and mpegdash parsers read the manifests.

Invariants, per file:
1. every video segment starts with a sync sample (mp4box.js), and ffprobe on init + that segment alone agrees:
   the first packet has the key flag and decodes to a key frame (I picture);
2. a track's segments are continuous: tfdt[n] + sum(durations[n]) == tfdt[n + 1] (no gap, no overlap), and the
   last one ends where the source's last sample does: the output's samples are the tail of the source's, with
   the same sizes, durations, sync flags and composition offsets (up to one constant);
3. audio and video segment boundaries (the presentation time where segment n >= 2 starts) lie within one audio
   frame of each other;
4. EXT-X-TARGETDURATION >= every EXTINF rounded to the nearest integer (RFC 8216 §4.3.3.1), and each EXTINF, and
   each S@d of the MPD's SegmentTimeline, is the segment's real presented duration per mp4box.js: from its
   earliest presentation time (clipped at 0: frames a source's edit list hides are decoded, never shown) to the
   next segment's, the last one to the end of its last sample;
5. the master playlist's CODECS and the MPD's codecs are mp4box.js's codec strings (up to the case differences
   `_same_codec` explains), and match the string rebuilt from ffprobe's profile/level fields of the source;
6. lip sync is the source's: every track presents each sample at its source presentation time (ffprobe, edit
   lists applied) plus one delay, and the delays of all tracks agree within one audio frame.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

import mediatools as mt
from conftest import MEDIA_ROOT
from media_fixtures import MOVIE_60S_S

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "isobmff"))
from test_codecs import _expected_codec_string, _matches  # noqa: E402  (codec strings rebuilt from ffprobe)

FILES = sorted(p.relative_to(MEDIA_ROOT).as_posix() for folder in ("mp4", "mov")
               for p in (MEDIA_ROOT / folder).iterdir() if p.suffix.lower() in (".mp4", ".mov"))
SEGMENT_S = 2  # the rules' segment_duration_s: short, so even 5-10 s files have boundaries to compare


@dataclass
class Track:
    """One track as fetched (files) and as mp4box.js reads them (everything else; ticks of `timescale`)."""

    rep: str
    init: Path
    segments: list[Path]
    codec: str = ""
    kind: str = ""
    timescale: int = 0
    tfdt: list[int] = field(default_factory=list)
    durations: list[list[int]] = field(default_factory=list)
    offsets: list[list[int]] = field(default_factory=list)
    sync: list[list[bool]] = field(default_factory=list)
    sizes: list[list[int]] = field(default_factory=list)

    @property
    def track_id(self) -> int:
        return int(self.rep[1:])

    def presentation(self, n: int) -> list[tuple[int, int]]:
        """(presentation time, duration) in ticks of every sample of segment n (0-based): dts from tfdt and the
        durations before it, plus the composition offset."""
        dts, times = self.tfdt[n], []
        for duration, offset in zip(self.durations[n], self.offsets[n]):
            times.append((dts + offset, duration))
            dts += duration
        return times

    def starts(self) -> list[int]:
        """Earliest presentation time (ticks) of each segment."""
        return [min(pts for pts, _ in self.presentation(n)) for n in range(len(self.tfdt))]

    def end(self) -> int:
        """Presentation end (ticks) of the track: the latest end of a sample of the last segment."""
        return max(pts + duration for pts, duration in self.presentation(len(self.tfdt) - 1))

    def presented_durations(self) -> list[Fraction]:
        """Seconds each segment is presented: from its start (clipped at 0) to the next one's; the last to end()."""
        starts = [max(s, 0) for s in self.starts()]
        ends = starts[1:] + [self.end()]
        return [Fraction(e - s, self.timescale) for s, e in zip(starts, ends)]


async def _get(client, url: str) -> bytes:
    resp = await client.get(url)
    body = await resp.read()
    assert resp.status == 200, (url, resp.status, body[:200])
    return body


async def _fetch(client, base: str, out: Path) -> tuple[m3u8.M3U8, dict[str, m3u8.M3U8], str, dict[str, Track]]:
    """Master playlist, media playlists by rep id, MPD text, and every track's init + segments saved under `out`."""
    master = m3u8.loads((await _get(client, f"{base}/master.m3u8")).decode())
    uris = sorted({p.uri for p in master.playlists} | {m.uri for m in master.media if m.uri})
    playlists, tracks = {}, {}
    for uri in uris:
        rep = uri.split("/")[1]  # cmaf1/<rep>/playlist.m3u8
        playlist = m3u8.loads((await _get(client, f"{base}/{uri}")).decode())
        playlists[rep] = playlist
        folder = out / rep
        folder.mkdir(parents=True)
        init = folder / "init.mp4"
        init.write_bytes(await _get(client, f"{base}/cmaf1/{rep}/{playlist.segment_map[0].uri}"))
        segments = []
        for segment in playlist.segments:
            path = folder / segment.uri.rpartition("/")[2]  # "<version>/3.m4s" -> 3.m4s
            path.write_bytes(await _get(client, f"{base}/cmaf1/{rep}/{segment.uri}"))
            segments.append(path)
        tracks[rep] = Track(rep, init, segments)
    mpd_text = (await _get(client, f"{base}/manifest.mpd")).decode()
    return master, playlists, mpd_text, tracks


def _mp4box(tracks: dict[str, Track], source: Path) -> dict[int, dict]:
    """Run the mp4box.js probe once, over every track and the source; fill in what it read of the tracks and
    return its view of the source's tracks by track_ID."""
    answer = mt.mp4box_probe({
        "tracks": [{"name": t.rep, "init": str(t.init), "segments": [str(s) for s in t.segments]}
                   for t in tracks.values()],
        "sources": [str(source)],
    })
    for result in answer["tracks"]:
        track = tracks[result["name"]]
        assert not result["errors"], (track.rep, result["errors"])
        track.codec, track.kind, track.timescale = result["codec"], result["kind"], result["timescale"]
        assert result["track_id"] == track.track_id
        for number, segment in enumerate(result["segments"], start=1):
            assert len(segment["fragments"]) == 1, f"{track.rep} segment {number}: one moof/traf per segment"
            fragment = segment["fragments"][0]
            assert fragment["tfdt"] is not None, f"{track.rep} segment {number}: no tfdt"
            assert fragment["sample_count"] == len(fragment["durations"]) > 0
            assert fragment["sample_bytes"] == fragment["mdat_bytes"], f"{track.rep} segment {number}: mdat size"
            track.tfdt.append(fragment["tfdt"])
            track.durations.append(fragment["durations"])
            track.offsets.append(fragment["composition_offsets"])
            track.sync.append(fragment["sync"])
            track.sizes.append(fragment["sizes"])
    source_view = answer["sources"][0]
    assert not source_view["errors"], source_view["errors"]
    return {t["track_id"]: t for t in source_view["tracks"]}


def _first_video_packet(init: Path, segment: Path, out: Path) -> tuple[str, dict]:
    """(packet flags, first decoded frame) of init + segment alone, per ffprobe."""
    out.write_bytes(init.read_bytes() + segment.read_bytes())
    proc = mt.run([mt.FFPROBE, "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_packets",
                   "-show_frames", "-show_entries", "packet=flags:frame=key_frame,pict_type", "-of", "json", out])
    items = json.loads(proc.stdout)["packets_and_frames"]
    packets = [i for i in items if i["type"] == "packet"]
    frames = [i for i in items if i["type"] == "frame"]
    assert packets and frames, f"{segment}: ffprobe found no video packet or frame"
    return packets[0]["flags"], frames[0]


def _check_sync_starts(track: Track, tmp: Path) -> int:
    """Invariant 1 for a video track; returns the number of segments checked. Two ffprobe processes at a time."""
    for number, sync in enumerate(track.sync, start=1):
        assert sync[0], f"{track.rep} segment {number}: mp4box.js says the first sample is not a sync sample"
    outs = [tmp / f"{track.rep}-{number}.mp4" for number in range(1, len(track.segments) + 1)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        firsts = list(pool.map(_first_video_packet, [track.init] * len(outs), track.segments, outs))
    for number, (flags, frame) in enumerate(firsts, start=1):
        assert "K" in flags, f"{track.rep} segment {number}: ffprobe's first packet is not a key frame ({flags})"
        assert frame["key_frame"] == 1 and frame["pict_type"] == "I", (track.rep, number, frame)
    return len(track.segments)


@dataclass(frozen=True)
class SampleTable:
    """One source stream per ffprobe with `-ignore_editlist 1`: the raw sample table, in decode order.
    duration_ts is then the sum of every stts delta (the end of the last sample); ticks of time_base."""

    time_base: Fraction
    duration_ts: int
    dts: list[int]
    sizes: list[int]
    positions: list[int]


@functools.lru_cache(maxsize=8)
def _ffprobe_sample_table(source: Path, stream_index: int) -> SampleTable:
    proc = mt.run([mt.FFPROBE, "-v", "error", "-ignore_editlist", "1", "-select_streams", str(stream_index),
                   "-show_entries", "stream=time_base,duration_ts:packet=dts,size,pos", "-of", "json", source])
    data = json.loads(proc.stdout)
    stream, packets = data["streams"][0], data["packets"]
    return SampleTable(Fraction(stream["time_base"]), int(stream["duration_ts"]), [int(p["dts"]) for p in packets],
                       [int(p["size"]) for p in packets], [int(p["pos"]) for p in packets])


def _check_continuity(track: Track, source: Path, stream_index: int, source_view: dict) -> None:
    """Invariant 2. What the source holds comes from ffprobe (sizes; durations as steps of its decode times, and
    the end of the last sample from its stream duration_ts: ffprobe's own packet `duration` is not the stts delta
    in several QuickTime files) and from mp4box.js (sizes, durations but the last, sync flags, composition
    offsets; mp4box.js sets a progressive track's last duration from the mdhd duration, not from stts)."""
    for n in range(len(track.tfdt) - 1):
        end = track.tfdt[n] + sum(track.durations[n])
        assert end == track.tfdt[n + 1], (
            f"{track.rep}: segment {n + 1} ends at {end}, segment {n + 2} starts at {track.tfdt[n + 1]} "
            f"({'gap' if end < track.tfdt[n + 1] else 'overlap'} of {abs(track.tfdt[n + 1] - end)} ticks)")
    sizes = [s for segment in track.sizes for s in segment]
    durations = [d for segment in track.durations for d in segment]
    offsets = [o for segment in track.offsets for o in segment]
    sync = [f for segment in track.sync for f in segment]
    count = len(sizes)
    table = _ffprobe_sample_table(source, stream_index)
    time_base, duration_ts, dts, source_sizes = table.time_base, table.duration_ts, table.dts, table.sizes
    assert time_base == Fraction(1, track.timescale) and 0 < count <= len(dts)
    first = len(dts) - count  # index of the first source sample the output holds (those before are dropped)
    assert sizes == source_sizes[first:], f"{track.rep}: the samples are not the tail of the source's (ffprobe)"
    steps = [b - a for a, b in zip(dts[first:], dts[first + 1 :])]
    assert durations[:-1] == steps, f"{track.rep}: durations differ from ffprobe's decode time steps"
    # the last segment ends where the source's last sample does
    assert track.tfdt[-1] + sum(track.durations[-1]) - track.tfdt[0] == duration_ts - (dts[first] - dts[0]), (
        f"{track.rep}: the last segment does not end at the end of the source's track")
    tail = slice(first, None)
    assert source_view["timescale"] == track.timescale and len(source_view["sizes"]) == len(dts)
    assert sizes == source_view["sizes"][tail], f"{track.rep}: the samples are not the tail of the source's"
    assert durations[:-1] == source_view["durations"][tail][:-1], f"{track.rep}: durations differ from stts"
    assert sync == source_view["sync"][tail], f"{track.rep}: sync flags differ from the source's stss"
    shifts = {ours - theirs for ours, theirs in zip(offsets, source_view["composition_offsets"][tail])}
    assert len(shifts) == 1, f"{track.rep}: composition offsets are not the source's plus one constant"


def _check_av_boundaries(video: Track, audio: Track) -> None:
    """Invariant 3: segment n >= 2 of the audio starts within one audio frame of the video's segment n."""
    audio_frame = Fraction(_median([d for segment in audio.durations for d in segment]), audio.timescale)
    v_starts = [Fraction(s, video.timescale) for s in video.starts()]
    a_starts = [Fraction(s, audio.timescale) for s in audio.starts()]
    for n in range(1, min(len(v_starts), len(a_starts))):
        gap = abs(v_starts[n] - a_starts[n])
        assert gap <= audio_frame, (
            f"segment {n + 1}: video {video.rep} starts at {float(v_starts[n]):.6f} s, audio {audio.rep} at "
            f"{float(a_starts[n]):.6f} s ({float(gap) * 1000:.3f} ms apart, one audio frame is "
            f"{float(audio_frame) * 1000:.3f} ms)")
    if len(a_starts) != len(v_starts):  # one track ends first: it must end before the other's next boundary
        shorter, longer = (audio, video) if len(a_starts) < len(v_starts) else (video, audio)
        boundary = Fraction(longer.starts()[len(shorter.starts())], longer.timescale)
        assert Fraction(shorter.end(), shorter.timescale) <= boundary + audio_frame, (shorter.rep, longer.rep)


def _source_delays(tracks: dict[str, Track], source: Path, streams: dict[int, int]) -> dict[str, Fraction]:
    """Per track: how much later (s) than in the source our output presents its samples. The source's times come
    from ffprobe with the edit lists applied, matched to our samples by byte position (the raw sample table gives
    the positions of the samples the output holds, its tail). Asserts the delay is one constant per track, up to
    one tick of either timescale."""
    delays = {}
    for track in tracks.values():
        raw = _ffprobe_sample_table(source, streams[track.track_id])
        presented = {p.pos: p.pts_s for p in mt.ffprobe_packets(source, str(streams[track.track_id]))
                     if p.pts_s is not None}
        ours = [Fraction(pts, track.timescale) for n in range(len(track.tfdt)) for pts, _ in track.presentation(n)]
        tail = raw.positions[len(raw.positions) - len(ours) :]
        differences = [t - presented[pos] for t, pos in zip(ours, tail) if pos in presented]
        assert differences, f"{track.rep}: ffprobe presents none of the output's samples"
        tick = Fraction(1, track.timescale) + raw.time_base
        assert max(differences) - min(differences) <= tick, f"{track.rep}: presentation times are not the source's"
        delays[track.rep] = min(differences)
    return delays


def _check_sync_with_source(tracks: dict[str, Track], source: Path, streams: dict[int, int]) -> None:
    """Invariant 6: every track is delayed from the source by the same time, up to one audio frame: lip sync is the
    source's."""
    delays = _source_delays(tracks, source, streams)
    audio = [t for t in tracks.values() if t.kind == "audio"]
    frame = max((Fraction(_median([d for s in t.durations for d in s]), t.timescale) for t in audio),
                default=Fraction(0))
    assert max(delays.values()) - min(delays.values()) <= frame, {k: float(v) for k, v in delays.items()}


def _median(values: list[int]) -> int:
    return sorted(values)[len(values) // 2]


def _check_media_playlist(track: Track, playlist: m3u8.M3U8) -> None:
    """Invariant 4."""
    extinf = [s.duration for s in playlist.segments]
    assert len(extinf) == len(track.segments)
    for number, duration in enumerate(extinf, start=1):
        # RFC 8216 §4.3.3.1: the EXTINF duration, rounded to the nearest integer, must not exceed the target
        assert math.floor(duration + 0.5) <= playlist.target_duration, (track.rep, number, duration)
    real = track.presented_durations()
    for number, (ours, theirs) in enumerate(zip(extinf, real), start=1):
        assert ours == pytest.approx(float(theirs), abs=1e-6), (
            f"{track.rep} segment {number}: EXTINF {ours} but mp4box.js measures {float(theirs):.6f} s")


def _same_codec(ours: str, mp4box: str) -> bool:
    """Our codec string is mp4box.js's. Two spellings differ only in case, and ours is the one to keep:
    - HEVC: mp4box.js prints the constraint bytes in lower-case hex ("b0"); ISO/IEC 14496-15 Annex E writes them
      upper-case in its examples ("hev1.1.6.L93.B0"), as Apple's HLS authoring spec and ffmpeg's HLS muxer do;
    - Opus: mp4box.js returns the sample entry's 4CC "Opus"; the codecs value is "opus" (the WebCodecs codec
      registry, what browsers' isTypeSupported and ffmpeg's HLS muxer use)."""
    if ours == mp4box:
        return True
    return ours.lower() == mp4box.lower() and ours.split(".")[0] in ("hvc1", "hev1", "opus")


def _check_codecs(master: m3u8.M3U8, mpd_text: str, tracks: dict[str, Track], source: Path) -> None:
    """Invariant 5."""
    by_id = {int(s["id"], 16): s for s in mt.ffprobe_streams(source)}
    for track in tracks.values():
        expected = _expected_codec_string(by_id[track.track_id])
        assert _matches(track.codec, expected) or _same_codec(expected, track.codec), (track.rep, track.codec,
                                                                                       expected)
    for variant in master.playlists:
        rep = variant.uri.split("/")[1]
        codecs = variant.stream_info.codecs.split(",")
        assert _same_codec(codecs[0], tracks[rep].codec), (variant.uri, codecs, tracks[rep].codec)
        if variant.stream_info.audio:
            group = [m.uri.split("/")[1] for m in master.media if m.group_id == variant.stream_info.audio]
            assert group and len(codecs) == 2, (variant.uri, codecs, group)
            assert all(_same_codec(codecs[1], tracks[r].codec) for r in group), (variant.uri, codecs, group)
        else:
            assert len(codecs) == 1
    mpd = MPEGDASHParser.parse(mpd_text)
    seen = set()
    for adaptation_set in mpd.periods[0].adaptation_sets:
        for representation in adaptation_set.representations:
            seen.add(representation.id)
            assert _same_codec(representation.codecs, tracks[representation.id].codec), (
                representation.id, representation.codecs, tracks[representation.id].codec)
    assert seen == set(tracks)


def _check_segment_timeline(mpd_text: str, tracks: dict[str, Track]) -> None:
    """Invariant 4 for DASH: each Representation's SegmentTimeline (in its SegmentTemplate's timescale) lists the
    same real durations, S@t being the first segment's presentation start (clipped at 0)."""
    mpd = MPEGDASHParser.parse(mpd_text)
    for adaptation_set in mpd.periods[0].adaptation_sets:
        for representation in adaptation_set.representations:
            track = tracks[representation.id]
            template = representation.segment_templates[0]
            entries = template.segment_timelines[0].Ss
            durations = [s.d for s in entries for _ in range(1 + (s.r or 0))]
            assert template.timescale == track.timescale, (track.rep, template.timescale, track.timescale)
            assert entries[0].t == max(track.starts()[0], 0), (track.rep, entries[0].t, track.starts()[0])
            assert [Fraction(d, track.timescale) for d in durations] == track.presented_durations(), track.rep


async def _check_presentation(client, base: str, source: Path, tmp: Path) -> dict[str, int]:
    master, playlists, mpd_text, tracks = await _fetch(client, base, tmp)
    source_tracks = await asyncio.to_thread(_mp4box, tracks, source)
    streams = {int(s["id"], 16): s["index"] for s in mt.ffprobe_streams(source)}
    checked = {"tracks": len(tracks), "segments": 0, "video_segments_ffprobed": 0}
    for track in tracks.values():
        checked["segments"] += len(track.segments)
        if track.kind == "video":
            checked["video_segments_ffprobed"] += await asyncio.to_thread(_check_sync_starts, track, tmp)
        await asyncio.to_thread(_check_continuity, track, source, streams[track.track_id],
                                source_tracks[track.track_id])
        _check_media_playlist(track, playlists[track.rep])
    video = [t for t in tracks.values() if t.kind == "video"]
    for audio in (t for t in tracks.values() if t.kind == "audio"):
        if video:
            _check_av_boundaries(video[0], audio)
    _check_segment_timeline(mpd_text, tracks)
    await asyncio.to_thread(_check_sync_with_source, tracks, source, streams)
    await asyncio.to_thread(_check_codecs, master, mpd_text, tracks, source)
    return checked


@pytest.fixture
async def shared(edge_client):
    """An edge with /files/ -> ../shared/media, cut at SEGMENT_S."""
    return await edge_client([{"from": "/files/", "to": "file://" + os.fspath(MEDIA_ROOT) + "/",
                               "segment_duration_s": SEGMENT_S}])


@pytest.mark.parametrize("name", FILES)
async def test_timeline_invariants_of_shared_files(shared, name, tmp_path):
    await _check_presentation(shared, f"/files/{name}", MEDIA_ROOT / name, tmp_path)


async def test_timeline_invariants_of_a_generated_movie(edge_client, movie_60s_scene_cuts, tmp_path):
    path = movie_60s_scene_cuts
    keys = mt.video_keyframe_times(path)
    cuts = mt.scene_cut_times(MOVIE_60S_S)
    at_cuts = [c for c in cuts if any(abs(k - c) < 1e-3 for k in keys)]
    assert len(at_cuts) >= len(cuts) // 2, "x264's scene-cut detection should add key frames at the cuts"
    assert len({round(b - a, 2) for a, b in zip(keys, keys[1:])}) > 10, "GOP lengths should vary"
    client = await edge_client([{"from": "/gen/", "to": "file://" + os.fspath(path.parent) + "/",
                                 "segment_duration_s": SEGMENT_S}])
    checked = await _check_presentation(client, f"/gen/{path.name}", path, tmp_path)
    assert checked["video_segments_ffprobed"] >= MOVIE_60S_S / SEGMENT_S * 0.8


async def test_regression_open_gops_and_an_edit_that_starts_mid_gop(shared, tmp_path):
    """Regressions this module found in mov/sample_edit_list.mp4 (iPhone HEVC with open GOPs; the video's edit
    starts 0.455 s after its first sync sample):
    - audio segment 2 started at that segment's sync sample, 101 ms after the leading pictures that open the video
      segment (invariant 3); now audio is cut where the video segment starts presenting;
    - the video alone was delayed by 0.455 s (tfdt cannot be negative), 0.45 s out of lip sync with the audio
      (invariant 6); now every track is delayed as much.
    The preconditions are checked with ffprobe, so the case keeps its teeth."""
    name = "mov/sample_edit_list.mp4"
    packets = mt.ffprobe_packets(MEDIA_ROOT / name, "v:0", ignore_editlist=True)
    keys = [k for k, p in enumerate(packets) if p.keyframe]
    leading = [p for p in packets[keys[1] + 1 :] if p.pts_ticks < packets[keys[1]].pts_ticks]
    assert leading, "the second GOP should open with leading pictures"
    edited = mt.ffprobe_packets(MEDIA_ROOT / name, "v:0")
    assert edited[0].discard, "the edit should hide the first frames of the first GOP"
    await _check_presentation(shared, f"/files/{name}", MEDIA_ROOT / name, tmp_path)
