"""One module per box, named by its 4CC. Each parses a payload (the bytes after the box header)
and, for the sample tables we regenerate, writes one back. See isobmff/__init__.py for the list."""
