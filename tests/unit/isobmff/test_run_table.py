"""The run-level sample table (isobmff/sample_table.py, built by isobmff/stbl.py) against ffprobe and against its own eager columns.

The clip path asks the table questions without making per-sample columns: decode and composition times of
samples, the sample at a decode time, offsets and byte spans, sync samples in a window, where the presentation
ends. For every shared .mp4/.mov/.m4a those answers must equal ffprobe's packet list (`-ignore_editlist 1`: raw
sample-table timing; ffmpeg may move every dts by one constant, so times are compared after removing it), and
equal what the eager columns (made on first use) say. Hypothesis then tries random windows on real files and
random tables (zero deltas, negative offsets, phantom and empty chunks, chunks out of order, samples past the
file's end) against a straightforward per-sample reference.
"""

from __future__ import annotations

import functools
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import mediatools as mt
from conftest import MEDIA_ROOT
from origin_proxy.errors import FragmentedMedia, MalformedBox, MalformedMedia, UnsupportedMedia
from origin_proxy.isobmff.boxes.ctts import CTTS_ENTRY
from origin_proxy.isobmff.boxes.stsc import STSC_ENTRY
from origin_proxy.isobmff.boxes.stts import STTS_ENTRY
from origin_proxy.isobmff.header import iter_boxes
from origin_proxy.isobmff.movie import parse_moov
from origin_proxy.isobmff import stbl
from origin_proxy.isobmff.stbl import build_sample_table

MEDIA = sorted(p.relative_to(MEDIA_ROOT).as_posix() for d in ("mp4", "mov", "fate") for p in (MEDIA_ROOT / d).iterdir()
               if p.suffix in (".mp4", ".mov", ".m4a"))
WINDOW_MEDIA = ["mp4/bbb_prog_10s.mp4", "mp4/h265_bframes.mp4", "mp4/sample_ac3_aac.mp4", "mov/sowt-with-video.mov",
                "mp4/edit_list_positive_shift.mp4"]


@functools.lru_cache(maxsize=None)
def _movie(name):
    path = MEDIA_ROOT / name
    data = path.read_bytes()
    moov = next((s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov"), None)
    if moov is None:
        pytest.skip(f"{name}: no moov")
    try:
        return parse_moov(data[moov.offset : moov.end], len(data), max_samples=10_000_000)
    except (FragmentedMedia, UnsupportedMedia, MalformedMedia) as exc:  # refused as before (tests/malformed)
        pytest.skip(f"{name}: {exc}")


@functools.lru_cache(maxsize=None)
def _probed(name):
    """{track_id: (packets, codec_name)} from ffprobe, edit lists ignored."""
    path = MEDIA_ROOT / name
    streams = mt.ffprobe_streams(path)
    out = {}
    for i, s in enumerate(streams):
        track_id = int(s["id"], 16) if str(s.get("id", "")).startswith("0x") else i + 1
        if s["codec_type"] in ("video", "audio"):
            out[track_id] = (mt.ffprobe_packets(path, str(i), ignore_editlist=True), s["codec_name"])
    return out


def _comparable(track, probed):
    packets, codec = probed[track.track_id]
    if codec.startswith("pcm_"):
        return None  # ffmpeg packs raw PCM samples into one packet per chunk (test_sample_table checks those bytes)
    assert len(packets) == track.table.sample_count
    return packets


@pytest.mark.parametrize("name", MEDIA)
def test_run_answers_equal_ffprobe_and_the_columns(name):
    movie = _movie(name)
    probed = _probed(name)
    assert movie.tracks, "no media track parsed"
    rng = np.random.default_rng(13)
    for track in movie.tracks:
        table = track.table
        packets = _comparable(track, probed)
        if packets is None:
            continue
        n = table.sample_count
        dts = np.array([p.dts_ticks for p in packets], np.int64)
        pts = np.array([p.pts_ticks for p in packets], np.int64)
        # ffmpeg moves dts (and pts, by another constant) when composition offsets are negative: the moves must
        # be one constant each per track; times are compared once they are taken out.
        dts = dts - int(dts[0])
        pts_moves = set((pts - table.pts_window(0, n)).tolist())
        assert len(pts_moves) == 1, "composition times differ by more than a constant"
        pts = pts - pts_moves.pop()
        pos = np.array([p.pos for p in packets], np.int64)
        size = np.array([p.size for p in packets], np.int64)

        # Sync samples: stss directly, 0-based, sorted, unique; their dts and pts.
        sync = table.sync_window(0, n)
        assert sync.dtype == np.int64
        assert sync.tolist() == [i for i, p in enumerate(packets) if p.keyframe]
        assert sync.tolist() == np.flatnonzero(table.is_sync).tolist()
        assert table.dts_at(sync).tolist() == dts[sync].tolist()
        assert table.pts_at(sync).tolist() == pts[sync].tolist()

        # The sample at a decode time, on sample times, between them and outside the track.
        ticks = np.concatenate((dts[rng.integers(0, n, 50)], rng.integers(-5, int(dts[-1]) + 5, 50), [-1, 0]))
        for t in ticks.tolist():
            for side in ("left", "right"):
                expected = int(np.searchsorted(dts, t, side=side))
                assert table.dts_searchsorted(t, side) == expected == int(np.searchsorted(table.dts_ticks, t, side))

        # Offsets of random samples and byte spans of random windows.
        samples = np.unique(np.concatenate((rng.integers(0, n, 60), [0, n - 1])))
        assert [table.sample_offset(int(s)) for s in samples] == pos[samples].tolist()
        for _ in range(20):
            first, stop = sorted(rng.integers(0, n + 1, 2).tolist())
            if first == stop:
                continue
            low, high = table.byte_span(first, stop)
            assert (low, high) == (int(pos[first:stop].min()), int((pos + size)[first:stop].max()))
            assert table.sample_offsets(first, stop).tolist() == pos[first:stop].tolist()

        # Where the presentation ends (before any edit), and the media duration. ffprobe's packet durations are
        # ffmpeg's own guesses (codec frame sizes), so the durations are stts's, from the eager column.
        durations = table.duration_ticks.astype(np.int64)
        assert table.composition_end_ticks == int((pts + durations).max())
        assert table.composition_end_ticks == int((table.dts_ticks + table.cts_offset_ticks + durations).max())
        assert table.media_duration_ticks == int(dts[-1]) + int(durations[-1]) == int(durations.sum())
        assert table.decode_span_ticks(0, n) == table.media_duration_ticks


def test_the_clip_path_makes_no_column():
    """Parsing and one `?start=` clip (select + write_clip + its first 64 KiB) leave every per-sample column
    unmade: they exist only once a packager asks."""
    from origin_proxy.isobmff.movie import MovieFile
    from origin_proxy.plan import LazyBytes
    from origin_proxy.rewrite.moov_writer import write_clip
    from origin_proxy.rewrite.params import ClipRequest
    from origin_proxy.rewrite.select import select
    from fractions import Fraction

    name = "mp4/h265_bframes.mp4"
    path = MEDIA_ROOT / name
    data = path.read_bytes()
    span = next(s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov")
    movie = parse_moov(data[span.offset : span.end], len(data), max_samples=10_000_000)
    movie_file = MovieFile(movie, b"", len(data), span.offset, span.size, True)
    parts, _ = write_clip(movie_file, select(movie, ClipRequest(Fraction(1, 2), None, "exact")))
    made = b"".join(bytes(p) if isinstance(p, LazyBytes) else bytes(p) for p in parts)
    assert made[4:8] == b"moov"
    columns = ("dts_ticks", "duration_ticks", "cts_offset_ticks", "is_sync", "_sync_all")
    for track in movie.tracks:
        assert not [c for c in columns if c in track.table.__dict__], track.track_id
        assert "first_sample" not in track.table.chunks.__dict__
    before = movie.nbytes
    assert movie.tracks[0].table.dts_ticks is movie.tracks[0].table.dts_ticks  # made once, then cached
    assert movie.nbytes > before  # and counted


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(WINDOW_MEDIA), data=st.data())
def test_random_windows_equal_the_eager_columns(name, data):
    movie = _movie(name)
    track = data.draw(st.sampled_from(movie.tracks))
    table = track.table
    n = table.sample_count
    first = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(first + 1, n))
    _check_window(table, first, stop)
    t = data.draw(st.integers(-10, int(table.dts_ticks[-1]) + 10))
    for side in ("left", "right"):
        assert table.dts_searchsorted(t, side) == int(np.searchsorted(table.dts_ticks, t, side))


def _check_window(table, first, stop):
    window = slice(first, stop)
    assert table.dts_window(first, stop).tolist() == table.dts_ticks[window].tolist()
    assert table.cts_window(first, stop).tolist() == table.cts_offset_ticks[window].tolist()
    assert table.pts_window(first, stop).tolist() == (table.dts_ticks + table.cts_offset_ticks)[window].tolist()
    picks = np.arange(first, stop)
    assert table.dts_at(picks).tolist() == table.dts_ticks[window].tolist()
    assert table.duration_at(picks).tolist() == table.duration_ticks[window].tolist()
    assert table.cts_at(picks).tolist() == table.cts_offset_ticks[window].tolist()
    assert table.dts_at(first) == int(table.dts_ticks[first]) and table.cts_at(stop - 1) == int(table.cts_offset_ticks[stop - 1])
    assert table.decode_span_ticks(first, stop) == int(table.duration_ticks[window].sum())
    sync = np.flatnonzero(table.is_sync)
    assert table.sync_window(first, stop).tolist() == sync[(sync >= first) & (sync < stop)].tolist()
    chunks = table.chunks
    first_sample = chunks.first_sample.astype(np.int64)
    assert chunks.chunk_of(picks).tolist() == (np.searchsorted(first_sample, picks, side="right") - 1).tolist()
    assert chunks.chunk_of(first) == int(np.searchsorted(first_sample, first, side="right")) - 1


# --- random tables against a per-sample reference ------------------------------------------------------------

def _reference(stts, ctts, stss, stsc, sizes, offsets, file_size):
    """What the eager table of before computed, per sample and per chunk, or the text of the MalformedBox it
    raised ("stsc:": the chunks cannot hold the samples; "outside": a chunk runs past the file)."""
    n = len(sizes)
    durations = np.repeat(stts["sample_delta"].astype(np.int64), stts["sample_count"].astype(np.int64))
    dts = np.concatenate(([0], np.cumsum(durations)[:-1])) if n else np.zeros(0, np.int64)
    if ctts is not None:
        cts = np.repeat(ctts["sample_offset"].astype(np.int64), ctts["sample_count"].astype(np.int64))[:n]
        cts = np.concatenate((cts, np.zeros(n - len(cts), np.int64)))
    else:
        cts = np.zeros(n, np.int64)
    first_chunk = stsc["first_chunk"].astype(np.int64)
    runs = np.diff(np.append(first_chunk, len(offsets) + 1))
    per_chunk = np.repeat(stsc["samples_per_chunk"].astype(np.int64), runs)
    if int(stsc["samples_per_chunk"].max()) > n or int(per_chunk.sum()) < n:
        return "stsc:"
    chunk_first = np.concatenate(([0], np.cumsum(per_chunk)[:-1]))
    keep = (chunk_first < n) & (per_chunk > 0)
    chunk_first, offs = chunk_first[keep], offsets.astype(np.int64)[keep]
    descriptions = np.repeat(stsc["sample_description_index"].astype(np.int64), runs)[keep]
    total = np.concatenate(([0], np.cumsum(sizes.astype(np.int64))))
    ends = offs + total[np.append(chunk_first[1:], n)] - total[chunk_first]
    if len(offs) and (int(offs.min()) < 0 or int(ends.max()) > file_size):
        return "outside"
    ascending = bool(np.all(offs[1:] >= ends[:-1]))
    sync = np.unique(stss.astype(np.int64) - 1) if stss is not None else np.arange(n)
    return dts, durations, cts, sync, chunk_first, ascending, descriptions


@st.composite
def _tables(draw):
    n = draw(st.integers(1, 60))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    stts = np.array([(b - a, draw(st.sampled_from([0, 1, 2, 1000, 1001]))) for a, b in zip(bounds, bounds[1:])],
                    STTS_ENTRY)
    ctts = None
    if draw(st.booleans()):
        counts = draw(st.lists(st.integers(0, 12), min_size=1, max_size=12))
        ctts = np.array([(c, draw(st.integers(-3000, 3000))) for c in counts], CTTS_ENTRY)
    stss = None
    if draw(st.booleans()):
        stss = np.array(draw(st.lists(st.integers(1, n), min_size=1, max_size=8)), ">u4")
    largest = draw(st.sampled_from([5, 500]))  # 5: most gaps between chunks clear the bound, 500: few do
    if draw(st.integers(0, 4)) == 0:  # one size for every sample (the test may give it as stsz's sample_size)
        sizes = np.full(n, draw(st.integers(1, largest)), ">u4")
    else:
        sizes = np.array(draw(st.lists(st.integers(0, largest), min_size=n, max_size=n)), ">u4")
    chunk_count = draw(st.integers(1, n + 3))
    entries = [(1, draw(st.integers(0, 4)))]
    for chunk in sorted(set(draw(st.lists(st.integers(2, max(chunk_count, 2)), max_size=4 if chunk_count > 1 else 0)))):
        entries.append((chunk, draw(st.integers(0, 4))))
    per = np.array([e[1] for e in entries])
    runs = np.diff(np.append([e[0] for e in entries], chunk_count + 1))
    short = n - int((per * runs).sum())
    if short > 0:  # make the chunks hold every sample: the last run gets more per chunk, or a tail entry
        entries[-1] = (entries[-1][0], entries[-1][1] + -(-short // runs[-1]))
    descriptions = draw(st.sampled_from([[1], [1, 2]]))  # one stsd entry, or two
    stsc = np.array([(c, k, draw(st.sampled_from(descriptions))) for c, k in entries], STSC_ENTRY)
    if draw(st.booleans()):  # in file order, back to back with gaps
        gaps = draw(st.lists(st.integers(0, 600), min_size=chunk_count, max_size=chunk_count))
        offsets = np.cumsum(np.array(gaps, np.int64)) + 8
    else:
        offsets = np.array(draw(st.lists(st.integers(0, 40_000), min_size=chunk_count, max_size=chunk_count)))
    file_size = int(offsets.max()) + draw(st.sampled_from([0, 100, 2500, 40_000]))
    box = draw(st.sampled_from(["stco", "co64", "co64 past 4 GiB"]))
    if box == "co64 past 4 GiB":  # 64-bit arithmetic throughout
        offsets, file_size = offsets + 5 * 2**30, file_size + 5 * 2**30
    offsets = offsets.astype(">u4" if box == "stco" else ">u8")
    return stts, ctts, stss, stsc, sizes, offsets, file_size


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables(), st.data())
def test_random_tables_equal_the_per_sample_reference(tables, data):
    _check_against_reference(tables, data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables(), st.data(), st.sampled_from([(2, 1, 1, 0), (2, 2, 2, 4096), (1, 1000, 3, 0)]))
def test_random_tables_through_every_way_of_summing_chunks(tables, data, thresholds):
    """The chunk check sums a chunk's bytes from slices of long runs (at least _LONG_RUN chunks, at most
    _MAX_SLICED_RUNS of them), by gathers for chunks of up to _LANES samples, else by the index of their samples.
    Real files need hundreds of chunks to reach the first two; small thresholds send these small tables through
    every way, with the same answers and refusals. The composition end is looked for in the last samples one by
    one (up to _TAIL_SAMPLES of them), else over all the runs: 0 sends these tables the second way."""
    long_run, sliced_runs, lanes, tail = thresholds
    with mock.patch.multiple(stbl, _LONG_RUN=long_run, _MAX_SLICED_RUNS=sliced_runs, _LANES=lanes,
                             _TAIL_SAMPLES=tail):
        _check_against_reference(tables, data)


def _check_against_reference(tables, data):
    stts, ctts, stss, stsc, sizes, offsets, file_size = tables
    n = len(sizes)
    expected = _reference(*tables)
    uniform = int(sizes.min()) == int(sizes.max()) > 0 and data.draw(st.booleans())  # stsz's sample_size form
    stsz = (int(sizes[0]), n, None) if uniform else (0, n, sizes)
    try:
        table = build_sample_table(timescale=1000, stts=stts, ctts=ctts, stss=stss, stsc=stsc,
                                   stsz=stsz, chunk_offsets=offsets, file_size=file_size,
                                   max_samples=10**6, box_path="stbl")
    except MalformedBox as exc:
        assert isinstance(expected, str) and expected in str(exc), exc
        event(f"refused: {expected}")
        return
    assert not isinstance(expected, str), expected
    dts, durations, cts, sync, chunk_first, ascending, descriptions = expected
    event(f"accepted, ascending={ascending}")
    assert table.chunks.ascending == ascending
    assert table.chunks.sample_description_index(0, len(chunk_first) - 1).tolist() == descriptions.tolist()
    assert table.chunks.first_sample[:-1].tolist() == chunk_first.tolist()
    assert table.dts_ticks.tolist() == dts.tolist() and table.cts_offset_ticks.tolist() == cts.tolist()
    assert table.duration_ticks.tolist() == durations.tolist()
    assert table.stss_indices is None or table.stss_indices.tolist() == sync.tolist()
    assert table.composition_end_ticks == int((dts + cts + durations).max())
    assert (table.cts_min_ticks, table.cts_max_ticks) == (int(cts.min()), int(cts.max()))
    first = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(first + 1, n))
    _check_window(table, first, stop)
    for t in (data.draw(st.integers(-5, int(dts[-1]) + 5)), int(dts[first])):
        for side in ("left", "right"):
            assert table.dts_searchsorted(t, side) == int(np.searchsorted(dts, t, side))
    # sample offsets: the chunk's offset plus the sizes before the sample in its chunk
    chunk = np.searchsorted(chunk_first, np.arange(n), side="right") - 1
    start = np.concatenate(([0], np.cumsum(sizes.astype(np.int64))))
    keep = (np.concatenate(([0], np.cumsum(np.repeat(stsc["samples_per_chunk"].astype(np.int64),
                                                   np.diff(np.append(stsc["first_chunk"].astype(np.int64),
                                                                     len(offsets) + 1))))[:-1])) < n)
    kept_offsets = offsets.astype(np.int64)[keep & (np.repeat(stsc["samples_per_chunk"].astype(np.int64), np.diff(
        np.append(stsc["first_chunk"].astype(np.int64), len(offsets) + 1))) > 0)]
    expected = kept_offsets[chunk] + start[:-1] - start[chunk_first[chunk]]
    assert table.sample_offsets(0, n).tolist() == expected.tolist()
    assert [table.sample_offset(i) for i in range(n)] == expected.tolist()


def _canonical(counts, values):
    """(counts, values) as a box's canonical entries: no zero counts, no two equal neighbours."""
    out: list[list[int]] = []
    for count, value in zip(counts, values):
        if count == 0:
            continue
        if out and out[-1][1] == value:
            out[-1][0] += count
        else:
            out.append([count, value])
    return out


@st.composite
def _canonical_tables(draw):
    """_tables() whose stts and ctts are canonical and cover exactly the N samples: the form real muxers write and
    the one the build reads in its fast pass (the box's entries kept as they are)."""
    stts, ctts, stss, stsc, sizes, offsets, file_size = draw(_tables())
    n = len(sizes)
    stts = np.array([tuple(e) for e in _canonical(stts["sample_count"].tolist(), stts["sample_delta"].tolist())],
                    STTS_ENTRY)
    cuts = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=10)))) if n > 1 else []
    bounds = [0, *cuts, n]
    offsets_ticks = [draw(st.integers(-3000, 3000)) for _ in range(len(bounds) - 1)]
    ctts = np.array([tuple(e) for e in _canonical([b - a for a, b in zip(bounds, bounds[1:])], offsets_ticks)],
                    CTTS_ENTRY)
    return stts, ctts, stss, stsc, sizes, offsets, file_size


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_canonical_tables(), st.data())
def test_random_canonical_tables_equal_the_per_sample_reference(tables, data):
    """Canonical stts/ctts covering N (kept as the box's own entries, their counts, checks and extremes read in one
    pass) give what the per-sample reference gives: times, offsets, cts_min/cts_max, composition end."""
    stts, ctts = tables[0], tables[1]
    assert int(stts["sample_count"].sum()) == int(ctts["sample_count"].sum()) == len(tables[4])
    _check_against_reference(tables, data)


@pytest.mark.parametrize("first_chunks", [[1, 1], [1, 3, 3], [1, 3, 2], [2], [1, 6]])
def test_stsc_first_chunk_not_increasing_from_1_is_refused(first_chunks):
    """stsc's first_chunk must start at 1 and increase strictly within the chunk count (§8.7.4): a repeated, a
    decreasing, a first other than 1 and one past the last chunk are each a MalformedBox."""
    n, chunk_count = 10, 5
    stsc = np.array([(chunk, 2, 1) for chunk in first_chunks], STSC_ENTRY)
    with pytest.raises(MalformedBox, match="first_chunk values are not increasing"):
        build_sample_table(timescale=1000, stts=np.array([(n, 1)], STTS_ENTRY), ctts=None, stss=None, stsc=stsc,
                           stsz=(0, n, np.full(n, 10, ">u4")), chunk_offsets=np.arange(chunk_count, dtype=">u4") * 100,
                           file_size=1000, max_samples=100, box_path="stbl")


@pytest.mark.parametrize("layout", ["one-sample chunks", "three-sample chunks", "alternating 1 and 2"])
@pytest.mark.parametrize("case", ["back to back", "one byte into the next chunk", "one byte past the file"])
def test_chunks_that_exactly_fill_their_room(layout, case):
    """300 chunks laid back to back, so every chunk exactly fills the room to the next one (no gap clears the
    bound, the check sums them all): as one long run of one-sample chunks (the sizes against the rooms), of
    three-sample chunks (rows summed), or of short runs alternating 1 and 2 samples (cumulative sizes). One byte
    more in a middle chunk makes the chunks overlap (not ascending); one byte less of file puts the last chunk past
    it (refused). Each as the per-sample reference says."""
    chunks = 300
    per = {"one-sample chunks": [1] * chunks, "three-sample chunks": [3] * chunks,
           "alternating 1 and 2": [1 + c % 2 for c in range(chunks)]}[layout]
    n = sum(per)
    sizes = np.random.default_rng(7).integers(100, 1000, n).astype(np.int64)
    bounds = np.concatenate(([0], np.cumsum(per)))
    chunk_bytes = np.array([sizes[a:b].sum() for a, b in zip(bounds, bounds[1:])])
    offsets = 8 + np.concatenate(([0], np.cumsum(chunk_bytes)[:-1]))
    file_size = int(offsets[-1] + chunk_bytes[-1])
    if case == "one byte into the next chunk":
        sizes[bounds[150]] += 1
    elif case == "one byte past the file":
        file_size -= 1
    entries = [(1, per[0], 1)] + [(c + 1, k, 1) for c, k in enumerate(per) if c and k != per[c - 1]]
    tables = (np.array([(n, 1)], STTS_ENTRY), None, None, np.array(entries, STSC_ENTRY), sizes.astype(">u4"),
              offsets.astype(">u4"), file_size)
    expected = _reference(*tables)
    assert expected == "outside" if case == "one byte past the file" else expected[5] == (case == "back to back")
    try:
        table = build_sample_table(timescale=1000, stts=tables[0], ctts=None, stss=None, stsc=tables[3],
                                   stsz=(0, n, tables[4]), chunk_offsets=tables[5], file_size=file_size,
                                   max_samples=10**6, box_path="stbl")
    except MalformedBox as exc:
        assert expected == "outside" and "outside" in str(exc)
        return
    assert expected != "outside" and table.chunks.ascending == expected[5]


def _stts_reference(durations: np.ndarray, first: int, stop: int) -> bytes:
    """The stts entries of samples [first, stop) by run-length coding the eager column (big-endian)."""
    window = durations[first:stop].astype(np.int64)
    starts = np.concatenate(([0], np.flatnonzero(window[1:] != window[:-1]) + 1))
    counts = np.diff(np.append(starts, len(window)))
    out = np.empty(len(starts), STTS_ENTRY)
    out["sample_count"], out["sample_delta"] = counts, window[starts]
    return out.tobytes()


@pytest.mark.parametrize("bound", [0, 10**9], ids=["numpy-searches", "array-bisects"])
@pytest.mark.parametrize("name", WINDOW_MEDIA + ["mp4/sample_edit_list_only_preroll_sync_sample.mp4", "mov/bt601.mov"])
def test_scalar_answers_equal_the_columns_on_either_search_path(name, bound):
    """The clip path's scalar questions give what the eager columns say, both when the short run tables are
    searched through their array('q') copies (bisect) and when every table is searched with numpy: forced here by
    the bound on their length (sample_table._LIST_BELOW), on a fresh parse each time."""
    from origin_proxy.isobmff import sample_table

    path = MEDIA_ROOT / name
    data = path.read_bytes()
    span = next(s for s in iter_boxes(data, 0, len(data), "") if s.fourcc == b"moov")
    with mock.patch.object(sample_table, "_LIST_BELOW", bound):
        movie = parse_moov(data[span.offset : span.end], len(data), max_samples=10_000_000)
        rng = np.random.default_rng(len(name) + bound % 7)
        for track in movie.tracks:
            table = track.table
            n = table.sample_count
            if n == 0:
                continue
            dts, cts = table.dts_ticks, table.cts_offset_ticks.astype(np.int64)
            pts, durations = dts + cts, table.duration_ticks
            chunk_first = table.chunks.first_sample.astype(np.int64)
            offsets = table.sample_offsets(0, n)
            samples = np.unique(np.concatenate((rng.integers(0, n, 40), [0, n - 1]))).tolist()
            for s in samples:
                assert table.dts_at(s) == int(dts[s]) and table.duration_at(s) == int(durations[s])
                assert table.cts_at(s) == int(cts[s]) and table.pts_at(s) == int(pts[s])
                run, chunk, lo, per = table.chunks.locate(s)
                assert chunk == int(np.searchsorted(chunk_first, s, side="right")) - 1 == table.chunks.chunk_of(s)
                assert lo == int(chunk_first[chunk]) and lo + per == int(chunk_first[chunk + 1])
                assert table.chunks.chunk_first_sample(chunk) == lo
                assert table.sample_offset(s) == int(offsets[s]) == table.sample_offset(s, (run, chunk, lo, per))
                assert table.sample_end(s) == int(offsets[s]) + int(table.size_bytes[s])
            assert table.dts_at(n) == table.media_duration_ticks
            for t in np.concatenate((dts[samples], dts[samples] + 1, [-1, int(dts[-1]) + 10])).tolist():
                for side in ("left", "right"):
                    assert table.dts_searchsorted(t, side) == int(np.searchsorted(dts, t, side=side))
            windows = [(0, n), (n - 1, n), (0, 1)] + [tuple(sorted(rng.integers(0, n + 1, 2).tolist()))
                                                      for _ in range(25)]
            for first, stop in windows:
                if first >= stop:
                    continue
                assert table.pts_list(first, stop) == pts[first:stop].tolist() == table.pts_window(first, stop).tolist()
                assert table.stts.expand(first, stop).tolist() == durations[first:stop].tolist()
                assert table.cts_window(first, stop).tolist() == cts[first:stop].tolist()
                count, pieces = table.stts.window(first, stop)
                made = b"".join(bytes(p) for p in pieces)
                assert made == _stts_reference(durations, first, stop)[: len(made)] and count * 8 == len(made)
                if table.ctts is not None:
                    count, pieces = table.ctts.window(first, stop)
                    entries = np.frombuffer(b"".join(bytes(p) for p in pieces), table.ctts.entries.dtype)
                    assert len(entries) == count
                    assert np.repeat(entries["sample_offset"].astype(np.int64),
                                     entries["sample_count"].astype(np.int64)).tolist() == cts[first:stop].tolist()
                ca, cb, count, make = table.chunks.stsc_window(first, stop)
                entries = make()
                assert len(entries) == count
                assert (ca, cb) == (table.chunks.chunk_of(first), table.chunks.chunk_of(stop - 1))
                per_chunk = np.diff(np.append(entries["first_chunk"].astype(np.int64), cb - ca + 2))
                assert int((entries["samples_per_chunk"].astype(np.int64) * per_chunk).sum()) == stop - first
                low, high = table.byte_span(first, stop)
                assert (low, high) == (int(offsets[first:stop].min()),
                                       int((offsets + table.size_bytes)[first:stop].max()))
            lists = [table.stts.__dict__.get("_bounds"), table.chunks.__dict__.get("_run_lists")]
            assert all(x is None for x in lists) if bound == 0 else all(x is not None for x in lists)
