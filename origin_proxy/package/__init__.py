"""package/: fragment-on-demand (DESIGN.md §5), pure: sample tables in, CMAF bytes, manifests and source ranges out.

segmenter.py: the segment timeline; cmaf.py: CMAF headers and fragments; tracks.py: the packaged presentation
(timelines + sample entry facts) and the codec matrix; urls.py: the URL scheme; manifests.py: a Packaging as the
manifest model (HLS playlists and MPD written by manifest/); smooth.py: MS-SSTR StreamIndexes and fragments (the
client manifest written by manifest/smooth.py); ism.py: `.ism` server manifests of multi-bitrate sets.

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
