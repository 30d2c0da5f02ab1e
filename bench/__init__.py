"""Side-by-side benchmark of origin_proxy against nginx's mp4 module (issue 4). Run: python -m bench [--quick]."""
