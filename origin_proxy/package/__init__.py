"""package/: fragment-on-demand (DESIGN.md §5), pure: sample tables in, CMAF bytes and source ranges out.

segmenter.py: the segment timeline; cmaf.py: CMAF headers and fragments. Manifests (HLS, DASH, Smooth)
and the HTTP routes come next (issue 3).
"""
