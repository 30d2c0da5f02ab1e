"""isobmff/fragment.py reads what package/cmaf.py writes and the fragmented files of ../shared/media/fmp4 the way
ffprobe does: the same samples (sizes, key flags) in the same order, per track (ISO/IEC 14496-12 §8.8)."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest


from origin_proxy.isobmff.fragment import TrackExtends, parse_moof
from origin_proxy.isobmff.header import iter_boxes

MEDIA_ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "media"
FMP4 = sorted(p.name for p in (MEDIA_ROOT / "fmp4").iterdir())


def _fragment_samples(data: bytes) -> dict[int, tuple[list[int], list[bool], list[int]]]:
    """track_ID -> (sample sizes, sync flags, file offsets) of every moof in file order, trex from the moov."""
    extends: dict[int, TrackExtends] = {}
    found: dict[int, tuple[list[int], list[bool], list[int]]] = {}
    for span in iter_boxes(data, 0, len(data), ""):
        if span.fourcc == b"moov":
            for child in iter_boxes(data, span.payload_offset, span.end, "moov"):
                if child.fourcc != b"mvex":
                    continue
                for trex in iter_boxes(data, child.payload_offset, child.end, "moov/mvex"):
                    if trex.fourcc == b"trex":
                        track_id, _, duration, size, flags = struct.unpack_from(">5I", data, trex.payload_offset + 4)
                        extends[track_id] = TrackExtends(track_id, duration, size, flags)
        elif span.fourcc == b"moof":
            for traf in parse_moof(memoryview(data)[span.offset:span.end], extends, moof_offset=span.offset).trafs:
                sizes, syncs, offsets = found.setdefault(traf.track_id, ([], [], []))
                offset = span.offset + traf.data_offset
                for size in traf.samples["size"]:
                    offsets.append(offset)
                    offset += int(size)
                sizes.extend(int(s) for s in traf.samples["size"])
                syncs.extend(not int(f) & 0x10000 for f in traf.samples["flags"])
    return found


def _ffprobe_packets(path: Path) -> dict[int, tuple[list[int], list[bool], list[int]]]:
    """track_ID (the stream's id) -> (packet sizes, key flags, file offsets), as ffprobe's demuxer sees the file."""
    out = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_packets", "-of", "json", str(path)],
        capture_output=True, check=True).stdout)
    track_of = {s["index"]: int(s["id"], 16) for s in out["streams"]}
    packets: dict[int, tuple[list[int], list[bool], list[int]]] = {}
    for p in out["packets"]:
        sizes, keys, offsets = packets.setdefault(track_of[p["stream_index"]], ([], [], []))
        offsets.append(int(p["pos"]))
        sizes.append(int(p["size"]))
        keys.append("K" in p["flags"])
    return packets


@pytest.mark.parametrize("name", FMP4)
def test_shared_fragmented_files_parse_like_ffprobe(name):
    path = MEDIA_ROOT / "fmp4" / name
    ours, theirs = _fragment_samples(path.read_bytes()), _ffprobe_packets(path)
    assert ours, "no moof parsed"
    for track_id, (sizes, syncs, offsets) in ours.items():
        want_sizes, want_keys, want_offsets = theirs[track_id]
        # A hybrid file (samples in stbl, then moofs) lists the stbl samples first: the fragments are the tail.
        assert sizes == want_sizes[len(want_sizes) - len(sizes):]
        assert syncs == want_keys[len(want_keys) - len(syncs):]
        assert offsets == want_offsets[len(want_offsets) - len(offsets):]  # data offsets resolved to the bytes


async def test_segments_written_by_cmaf_py_parse_back_like_ffprobe(edge, tmp_path):
    """init + media segments of a shared file's video and audio, as served, read back by parse_moof."""
    for rendition in ("v1", "a2"):
        base = f"/files/mp4/sample.mp4/cmaf1/{rendition}"
        init = await (await edge.client.get(f"{base}/init.mp4")).read()
        segments = []
        for number in (1,):
            resp = await edge.client.get(f"{base}/{number}.m4s")
            assert resp.status == 200
            segments.append(await resp.read())
        track = tmp_path / f"{rendition}.mp4"
        track.write_bytes(init + b"".join(segments))
        ours, theirs = _fragment_samples(track.read_bytes()), _ffprobe_packets(track)
        assert list(ours) == list(theirs) and len(ours) == 1
        (sizes, syncs, offsets), (want_sizes, want_keys, want_offsets) = (next(iter(ours.values())),
                                                                            next(iter(theirs.values())))
        assert sizes == want_sizes and syncs == want_keys and offsets == want_offsets and len(sizes) > 2
        if rendition == "v1":
            assert syncs[0] and not all(syncs)
