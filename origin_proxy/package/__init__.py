"""package/: fragment-on-demand (DESIGN.md §5), pure: sample tables in, CMAF bytes, manifests and source ranges out.

segmenter.py: the segment timeline; cmaf.py: CMAF headers and fragments; tracks.py: the packaged presentation
(timelines + sample entry facts) and the codec matrix; urls.py: the URL scheme; hls.py: RFC 8216 playlists;
dash.py: ISO/IEC 23009-1 MPD; smooth.py: MS-SSTR client manifest and fragments; ism.py: `.ism` server manifests
of multi-bitrate sets (HLS and DASH of a set; Smooth of a set not yet).

Codec matrix: which sample entries each protocol's manifest lists (tracks.CARRIED_BY). A track no protocol
carries is left out with one log line at the edge; a file with none at all is UnpackageableMedia (415).

| sample entry            | RFC 6381 codecs         | HLS (fMP4) | DASH (CMAF) | Smooth      |
|-------------------------|-------------------------|------------|-------------|-------------|
| avc1, avc3              | avc1.PPCCLL             | yes        | yes         | yes (H264)  |
| hvc1, hev1              | hvc1.P.C.Lnn.xx         | yes        | yes         | no          |
| av01                    | av01.P.LLT.DD           | yes        | yes         | no          |
| mp4a (AAC)              | mp4a.40.n               | yes        | yes         | yes (AACL/H)|
| ac-3, ec-3              | ac-3, ec-3              | yes        | yes         | no          |
| Opus                    | opus                    | yes        | yes         | no          |
| mp4v, jpeg, ProRes ...  | -                       | no         | no          | no          |
| sowt, twos, lpcm, fLaC  | -                       | no         | no          | no          |
"""
