"""select.py's integer tick helpers give exactly what the Fraction forms they replace give (the clip path's
rounding is unchanged): media time at a movie time, its floor / ceil / round-half-up, and seconds between two
times in ticks, over random decimal request times, edit-list leads and timescales."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from origin_proxy.isobmff.edits import TrackPresentation
from origin_proxy.rewrite.params import to_ticks
from origin_proxy.rewrite.select import _media_ticks, _media_time_at, _ticks_between

decimal_s = st.builds(lambda n, k: Fraction(n, 10**k), st.integers(0, 10**12), st.integers(0, 9))
timescale = st.sampled_from([1, 1000, 24000, 30000, 44100, 48000, 90000, 600, 2**31 - 1]) | st.integers(1, 2**32 - 1)
lead_s = st.builds(Fraction, st.integers(0, 10**9), st.integers(1, 2**32 - 1))


@settings(max_examples=400, deadline=None)
@given(decimal_s, lead_s, st.integers(0, 2**40), timescale)
def test_media_ticks_equals_fraction_media_time(t_s, lead, media_time, ts):
    pres = TrackPresentation(lead, media_time, lead + 10**6)
    t_s = max(t_s, lead)
    exact = _media_time_at(pres, ts, t_s)
    n, d = _media_ticks(pres, ts, t_s)
    assert d > 0 and Fraction(n, d) == exact
    assert n // d == math.floor(exact)
    assert -(-n // d) == math.ceil(exact)
    assert (2 * n + d) // (2 * d) == math.floor(exact + Fraction(1, 2))


@settings(max_examples=400, deadline=None)
@given(decimal_s | lead_s, decimal_s | lead_s, timescale)
def test_ticks_between_equals_to_ticks(a, b, ts):
    later, earlier = max(a, b), min(a, b)
    assert _ticks_between(later, earlier, ts) == to_ticks(later - earlier, ts)


def test_half_tick_rounds_up():
    # 0.5 ms at 1 kHz is half a tick: up to 1, as to_ticks does; a hair below stays 0.
    assert _ticks_between(Fraction(5, 10000), Fraction(0), 1000) == 1
    assert _ticks_between(Fraction(4999, 10000000), Fraction(0), 1000) == 0
