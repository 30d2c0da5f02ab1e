"""manifest/: manifests as plain data and their writers, pure (no numpy, MP4, aiohttp or clock).

model.py: Presentation, Period, Rendition, SegmentTimeline, Live, Smooth StreamIndex/QualityLevel; hls.py: RFC 8216
master and media playlists; dash.py: ISO/IEC 23009-1 static and dynamic MPDs; smooth.py: the MS-SSTR client
manifest. VOD (package/) and live (live/) both build the model and call these writers.
"""
