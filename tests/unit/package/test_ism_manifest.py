"""package/ism.py: server manifests (SMIL 2.0 switch) parsed, and hostile ones refused before expat sees them."""

from __future__ import annotations

import pytest

from origin_proxy.errors import MalformedMedia, UnsupportedMedia
from origin_proxy.package.ism import MAX_ISM_BYTES, check_src, is_ism_path, parse_ism

USP_STYLE = b"""<?xml version="1.0" encoding="utf-8"?>
<!-- written by hand, in the layout of a USP server manifest -->
<smil xmlns="http://www.w3.org/2001/SMIL20/Language">
  <head>
    <meta name="clientManifestRelativePath" content="movie.ismc"/>
  </head>
  <body>
    <switch>
      <video src="movie_1000k.mp4" systemBitrate="1000000">
        <param name="trackID" value="1" valuetype="data"/>
      </video>
      <video src="hd/movie_3000k.mp4" systemBitrate="3000000"/>
      <textstream src="subs.ismt" systemBitrate="1000"/>
      <audio src="movie_1000k.mp4" systemBitrate="128000">
        <param name="trackID" value="2" valuetype="data"/>
      </audio>
    </switch>
  </body>
</smil>
"""


def test_switch_entries_in_document_order():
    manifest = parse_ism(USP_STYLE)
    assert [(e.position, e.kind, e.src, e.system_bitrate_bps, e.track_id) for e in manifest.entries] == [
        (1, "video", "movie_1000k.mp4", 1_000_000, 1),
        (2, "video", "hd/movie_3000k.mp4", 3_000_000, None),
        (3, "audio", "movie_1000k.mp4", 128_000, 2),
    ]
    assert [e.representation_id for e in manifest.entries] == ["v1", "v2", "a3"]
    assert manifest.sources == ["movie_1000k.mp4", "hd/movie_3000k.mp4"]
    assert manifest.entry("a3").track_id == 2
    with pytest.raises(KeyError):
        manifest.entry("v3")


def test_no_namespace_and_smil1_bitrate_attribute():
    manifest = parse_ism(b'<smil><body><switch><audio src="a.mp4" system-bitrate="64000"/></switch></body></smil>')
    assert manifest.entries[0].system_bitrate_bps == 64_000


@pytest.mark.parametrize("data", [
    # billion laughs: refused at the declaration, never expanded
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    b'<smil><body><switch><video src="&lol2;.mp4"/></switch></body></smil>',
    b'<!DOCTYPE smil SYSTEM "http://example.com/smil.dtd"><smil/>',
    b'<smil><body><switch><video src="a.mp4" systemBitrate="fast"/></switch></body></smil>',
    b'<smil><body><switch><video src="a.mp4"><param name="trackID" value="0"/></video></switch></body></smil>',
    b'<smil><body><switch><video src="a.mp4"><param name="trackID" value="\xc2\xb2"/></video></switch></body></smil>',
    b'<smil><body><switch><textstream src="a.ismt"/></switch></body></smil>',
    b'<html><body><switch><video src="a.mp4"/></switch></body></html>',
    b'<smil><body/></smil>',
    b'<smil><body><switch>',
    b'',
])
def test_malformed_manifests_are_refused(data):
    with pytest.raises(MalformedMedia):
        parse_ism(data)


def test_size_and_entry_limits():
    with pytest.raises(UnsupportedMedia):
        parse_ism(USP_STYLE + b" " * MAX_ISM_BYTES)
    many = b"".join(b'<video src="v%d.mp4"/>' % n for n in range(65))
    with pytest.raises(UnsupportedMedia):
        parse_ism(b"<smil><body><switch>" + many + b"</switch></body></smil>")


@pytest.mark.parametrize("src", ["../a.mp4", "a/../../b.mp4", "/abs.mp4", "http://host/a.mp4", "C:\\a.mp4",
                                 "a//b.mp4", "./a.mp4", "a.mp4?x=1", "a\x00.mp4", ""])
def test_sources_must_stay_below_the_ism(src):
    with pytest.raises(MalformedMedia):
        check_src(src)


def test_plain_relative_sources_pass():
    assert check_src("sub dir/movie (1).mp4") == "sub dir/movie (1).mp4"
    assert is_ism_path("a/Set.ISM") and not is_ism_path("live.isml")
