"""Track languages in the manifests (issue 3): HLS LANGUAGE (RFC 8216 §4.4.6.1) and DASH AdaptationSet@lang are
RFC 5646 tags in their shortest form, never the mdhd's ISO 639-2/T code; an undetermined or unknown language
gets no attribute at all.

The movie is made by ffmpeg with one audio track per mdhd code (ffprobe confirms what the mdhd holds); the
manifests are read by the m3u8 and mpegdash parsers. The expected tags are written out from the IANA language
subtag registry (RFC 5646 §2.2.1: the ISO 639-1 code when one exists, else the 3-letter code).
"""

from __future__ import annotations

import os

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

import mediatools as mt
from origin_proxy.package.tracks import language_tag

# mdhd code -> the RFC 5646 tag the manifests must carry (None: no LANGUAGE / no lang)
EXPECTED = {"eng": "en", "fra": "fr", "gsw": "gsw", "deu": "de", "und": None, "zzz": None}


@pytest.mark.parametrize(("code", "tag"), [*EXPECTED.items(), ("ger", "de"), ("", None), ("heb", "he"),
                                           ("zho", "zh"), ("a1", None)])
def test_language_tag(code, tag):
    assert language_tag(code) == tag


@pytest.fixture
async def languages(edge_client, tmp_path):
    """An edge over a 2 s movie: H.264 video (mdhd "eng") and one AAC track per EXPECTED code, in that order."""
    path = tmp_path / "languages.mp4"
    codes = list(EXPECTED)
    argv = [mt.FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-map", "0:v"]
    argv += ["-map", "1:a"] * len(codes)
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-metadata:s:v:0", "language=eng"]
    for position, code in enumerate(codes):
        argv += [f"-metadata:s:a:{position}", f"language={code}"]
    mt.run([*argv, str(path)])
    stored = [s.get("tags", {}).get("language", "und") for s in mt.ffprobe_streams(path) if s["codec_type"] == "audio"]
    assert stored == codes, "ffmpeg should store every code in mdhd as given"
    client = await edge_client([{"from": "/t/", "to": "file://" + os.fspath(tmp_path) + "/"}])
    return client


async def test_hls_language_is_an_rfc_5646_tag(languages):
    resp = await languages.get("/t/languages.mp4/master.m3u8")
    text = await resp.text()
    assert resp.status == 200
    master = m3u8.loads(text)
    assert [m.language for m in master.media] == list(EXPECTED.values())
    # no LANGUAGE="und" (or empty) attribute at all for the undetermined ones
    media_lines = [line for line in text.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    assert sum("LANGUAGE=" in line for line in media_lines) == sum(tag is not None for tag in EXPECTED.values())


async def test_dash_lang_is_an_rfc_5646_tag(languages):
    resp = await languages.get("/t/languages.mp4/manifest.mpd")
    assert resp.status == 200
    mpd = MPEGDASHParser.parse(await resp.text())
    sets = mpd.periods[0].adaptation_sets
    assert [(s.content_type, s.lang) for s in sets if s.content_type == "video"] == [("video", "en")]
    audio = {s.lang: len(s.representations) for s in sets if s.content_type == "audio"}
    # one AdaptationSet per language; "und" and the unknown code share the set without @lang
    assert audio == {"en": 1, "fr": 1, "gsw": 1, "de": 1, None: 2}
