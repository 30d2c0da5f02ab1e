"""isobmff/: pure ISO Base Media File Format parsing and writing (bytes in, values out; no I/O).

Section numbers refer to ISO/IEC 14496-12:2022 (7th edition).

| box | where | what we do | module |
|---|---|---|---|
| box header (size, largesize, size 0, uuid) | everywhere | parse (struct), bounded by the parent | header.py |
| ftyp | top level | copied verbatim into clips | store/moov.py |
| moov, trak, edts, mdia, minf, stbl | containers | walked; rebuilt with new children | movie.py |
| mvhd §8.2.2, tkhd §8.3.2, mdhd §8.4.2 | moov, trak, mdia | parse (construct); duration patched | boxes/mvhd.py tkhd.py mdhd.py |
| hdlr §8.4.3 | mdia (QuickTime also minf) | parse mdia's only (construct) | boxes/hdlr.py |
| elst §8.6.6 | edts | parse and write | boxes/elst.py |
| stts §8.6.1.2, ctts §8.6.1.3, stss §8.6.2 | stbl | numpy columns; regenerated | boxes/stts.py ctts.py stss.py |
| stsc §8.7.4, stsz §8.7.3.2, stco/co64 §8.7.5 | stbl | numpy columns; regenerated (co64 when needed) | boxes/stsc.py stsz.py stco.py |
| stsd §8.5.2 and sample entries (avc1/avc3, hvc1/hev1, av01, mp4a, Opus, ac-3, ec-3, QuickTime wave, ...) | stbl | passed through untouched; first entry's 4CC read as the codec | movie.py |
| sdtp, sbgp, subs, saiz, saio, stps, stdp, padb, cslg | stbl | dropped from clips (per-sample data a cut would contradict) | movie.py |
| sgpd, udta, meta, iods, tref, dinf, ... | anywhere | passed through untouched | movie.py |
| mvex (fragmented input), stz2 | moov, stbl | refused: FragmentedMedia / UnsupportedMedia | movie.py |
| trak with a handler other than vide/soun (meta, mett, mebx, text, tmcd, hint) | moov | dropped from clips | movie.py |
"""
