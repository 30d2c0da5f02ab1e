"""Fuzzing the parse -> clip pipeline against its contract.

Contract, for any input bytes: `load_movie_file` + `plan_clip` either raise an OriginError (which the edge
maps to a status) or return a Plan whose parts are consistent: lengths add up, every SourceRange lies inside
the file, the generated head starts with ftyp or moov. Nothing else may escape (no IndexError, ValueError,
OverflowError, RecursionError ...), and no case may take long (hangs show as the per-case time bound).

Two fuzzers:
- a mutation fuzzer over the real files in ../shared/media/mp4: bit flips in the moov, hostile values
  written over size and count fields, and truncation. Seeded, so every case is reproducible; a failing
  case is written to tests/malformed/regressions/ under a name that says how it was made.
- a hypothesis test that builds box trees (moov/trak/.../stbl with random tables and hostile counts).

CI runs a bounded number of cases. A longer run:
    ORIGIN_PROXY_FUZZ_CASES=20000 python3 -m pytest -q tests/malformed/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boxes import make_box
from conftest import MEDIA_ROOT
from origin_proxy.errors import OriginError
from origin_proxy.store.moov import MediaLimits, load_movie_file
from origin_proxy.plan import SourceRange
from origin_proxy.rewrite.clip import plan_clip
from origin_proxy.rewrite.params import ClipRequest

CASES = int(os.environ.get("ORIGIN_PROXY_FUZZ_CASES", "400"))
REGRESSIONS = Path(__file__).parent / "regressions"
SEEDS = ["mp4/sample.mp4", "mp4/bbb_prog_10s.mp4", "mp4/sample_2_byte_NAL_length.mp4", "mp4/edts.mp4",
         "mp4/sample_opus.mp4", "mov/bt601.mov", "mp4/multiple-aac-tracks.mp4", "mp4/cursed-vfr.mp4"]
REQUESTS = [ClipRequest(Fraction(1, 2), None, "exact"), ClipRequest(None, Fraction(1), "exact"),
            ClipRequest(Fraction(1, 10), Fraction(7, 10), "keyframe")]
HOSTILE_U32 = [0, 1, 7, 8, 9, 15, 16, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF8]
LIMITS = MediaLimits(max_moov_bytes=8 * 1024 * 1024, max_samples=2_000_000, head_bytes=4096)
CASE_TIME_BOUND_S = 5.0


class BytesSource:
    """An in-memory Source (the Source protocol of origin_proxy/source)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.identity, self.size_bytes, self.validator, self.last_modified = data, "mem", len(data), "v", None

    async def read(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]


def check_contract(data: bytes) -> None:
    """Run the pipeline on `data`; return normally when the contract holds, raise AssertionError otherwise."""

    async def run() -> None:
        try:
            movie_file = await load_movie_file(BytesSource(data), LIMITS)
        except OriginError:
            return
        for request in REQUESTS:
            try:
                plan = plan_clip(movie_file, request)
            except OriginError:
                continue
            total = 0
            for part in plan.parts:
                if isinstance(part, SourceRange):
                    assert 0 <= part.offset and part.size > 0 and part.offset + part.size <= len(data), part
                    total += part.size
                else:
                    total += len(bytes(part))  # renders LazyBytes too: a promised length that is not kept fails
            assert total == plan.total_bytes
            head = plan.parts[0]
            assert isinstance(head, SourceRange) or head[4:8] in (b"ftyp", b"moov"), head[:16]

    started = time.monotonic()
    asyncio.run(run())
    assert time.monotonic() - started < CASE_TIME_BOUND_S, "a case took too long (a hang in the making)"


def _moov_span(data: bytes) -> tuple[int, int]:
    pos = 0
    while pos + 8 <= len(data):
        size, fourcc = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        if fourcc == b"moov":
            return pos, pos + size
        pos += size
    raise AssertionError("seed file without moov")


def _field_positions(data: bytes, start: int, end: int) -> list[int]:
    """Offsets of 32-bit fields worth attacking: box sizes and the word after version/flags (entry counts)."""
    positions, pos = [], start
    while pos + 8 <= end:
        size, fourcc = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > end:
            break
        positions += [pos, pos + 12]
        if fourcc in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"):
            positions += _field_positions(data, pos + 8, pos + size)
        elif fourcc == b"stsd":
            positions += [pos + 16]
        pos += size
    return positions


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded mutation of the moov of `data`: (description, mutated bytes)."""
    start, end = _moov_span(data)
    kind = rng.choice(["bitflip", "field", "field", "truncate"])
    out = bytearray(data)
    if kind == "bitflip":
        flips = [(rng.randrange(start, end), rng.randrange(8)) for _ in range(rng.randint(1, 8))]
        for position, bit in flips:
            out[position] ^= 1 << bit
        return "bitflip-" + "-".join(f"{p}b{b}" for p, b in flips), bytes(out)
    if kind == "field":
        position = rng.choice(_field_positions(data, start, end))
        old = struct.unpack_from(">I", data, position)[0]
        value = rng.choice(HOSTILE_U32 + [old + 1, max(old - 1, 0), old * 2 & 0xFFFFFFFF])
        struct.pack_into(">I", out, position, value)
        return f"field-{position}-{value:x}", bytes(out)
    cut = rng.randrange(start, end)
    return f"truncate-{cut}", bytes(out[:cut])


@pytest.mark.parametrize("seed_name", SEEDS)
def test_mutation_fuzzer(seed_name):
    data = (MEDIA_ROOT / seed_name).read_bytes()
    rng = random.Random(f"{seed_name}:{CASES}")
    for _ in range(max(CASES // len(SEEDS), 1)):
        how, mutated = mutate(data, rng)
        try:
            check_contract(mutated)
        except BaseException as exc:  # keep the input that broke the contract, then fail with its name
            REGRESSIONS.mkdir(exist_ok=True)
            name = f"{Path(seed_name).stem}-{how}.mp4"
            (REGRESSIONS / name).write_bytes(mutated)
            raise AssertionError(f"contract broken by {name}: {exc!r}") from exc


def test_regression_files_hold_the_contract():
    """Every input a fuzzer once broke us with, named after how it was made."""
    for path in sorted(REGRESSIONS.glob("*.mp4")) if REGRESSIONS.exists() else []:
        check_contract(path.read_bytes())


# ------------------------------------------------------------------------------------------ structure-aware

def _full_box(fourcc: bytes, version: int, body: bytes) -> bytes:
    return make_box(fourcc, struct.pack(">B3x", version) + body)


u32 = st.one_of(st.sampled_from(HOSTILE_U32), st.integers(0, 64))
FIELD = {"I": u32, "i": st.one_of(st.integers(-64, 64), st.sampled_from([-(2**31), 2**31 - 1])),
         "H": st.sampled_from([0, 1, 0xFFFF])}


@st.composite
def table(draw, fourcc: bytes, entry_format: str):
    entries = draw(st.lists(st.tuples(*[FIELD[f] for f in entry_format]), max_size=6))
    count = draw(st.one_of(st.just(len(entries)), u32))
    body = struct.pack(">I", count) + b"".join(struct.pack(">" + entry_format, *e) for e in entries)
    return _full_box(fourcc, draw(st.sampled_from([0, 1])), body)


@st.composite
def stsz(draw):
    sizes = draw(st.lists(st.integers(0, 64), max_size=8))
    uniform = draw(st.sampled_from([0, 0, 1, 0xFFFFFFFF]))
    count = draw(st.one_of(st.just(len(sizes)), u32))
    return _full_box(b"stsz", 0, struct.pack(">II", uniform, count) + b"".join(struct.pack(">I", s) for s in sizes))


MDAT_PAYLOAD_AT = 24  # ftyp (16 bytes) + mdat header (8): where coherent chunk offsets point
MDAT_BYTES = 512


def _coherent_tables(n: int, delta: int, ctts: list[int]) -> dict[bytes, bytes]:
    """Tables that agree with each other: n samples of 8 bytes in one chunk at the start of the mdat."""
    return {
        b"stts": _full_box(b"stts", 0, struct.pack(">III", 1, n, delta)),
        b"ctts": _full_box(b"ctts", 1, struct.pack(">I", len(ctts)) + b"".join(struct.pack(">Ii", 1, c) for c in ctts)),
        b"stss": _full_box(b"stss", 0, struct.pack(">II", 1, 1)),
        b"stsc": _full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, n, 1)),
        b"stsz": _full_box(b"stsz", 0, struct.pack(">II", 8, n)),
        b"stco": _full_box(b"stco", 0, struct.pack(">II", 1, MDAT_PAYLOAD_AT)),
    }


@st.composite
def trak(draw):
    handler = draw(st.sampled_from([b"vide", b"vide", b"soun", b"meta"]))
    timescale = draw(st.sampled_from([1000, 1000, 90000, 0, 1, 0xFFFFFFFF]))
    n = draw(st.integers(1, 40))
    tables = _coherent_tables(n, draw(st.sampled_from([100, 33, 1, 0])),
                              draw(st.lists(st.integers(-200, 200), min_size=n, max_size=n)))
    hostile = {b"stts": table(b"stts", "II"), b"ctts": table(b"ctts", "Ii"), b"stss": table(b"stss", "I"),
               b"stsc": table(b"stsc", "III"), b"stsz": stsz(), b"stco": table(b"co64", "I")}
    for name in draw(st.lists(st.sampled_from(sorted(hostile)), max_size=2, unique=True)):
        tables[name] = draw(hostile[name])
    if draw(st.booleans()):
        tables.pop(b"ctts")
    stbl_children = [_full_box(b"stsd", 0, struct.pack(">I", 1) + make_box(b"avc1", bytes(78))), *tables.values()]
    draw(st.randoms()).shuffle(stbl_children)
    edts = draw(st.one_of(st.just(b""), st.builds(lambda e: make_box(b"edts", e), table(b"elst", "IiHH"))))
    mdia = make_box(b"mdia", _full_box(b"mdhd", 0, struct.pack(">IIII", 0, 0, timescale, 100) + bytes(4))
                    + _full_box(b"hdlr", 0, bytes(4) + handler + bytes(12))
                    + make_box(b"minf", make_box(b"stbl", b"".join(stbl_children))))
    return make_box(b"trak", _full_box(b"tkhd", 0, struct.pack(">IIII", 0, 0, 1, 0) + bytes(64)) + edts + mdia)


@st.composite
def movie_file(draw):
    mvhd = _full_box(b"mvhd", 0, struct.pack(">IIII", 0, 0, draw(st.sampled_from([1000, 1000, 0])), 100) + bytes(80))
    moov = make_box(b"moov", mvhd + b"".join(draw(st.lists(trak(), min_size=1, max_size=3))))
    mdat = make_box(b"mdat", bytes(MDAT_BYTES))
    ftyp = make_box(b"ftyp", b"isom\0\0\0\0")
    return ftyp + mdat + moov  # moov last, so the coherent chunk offsets stay true


@settings(max_examples=max(CASES // 2, 50), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(movie_file())
def test_structure_aware_movies_hold_the_contract(data):
    check_contract(data)
