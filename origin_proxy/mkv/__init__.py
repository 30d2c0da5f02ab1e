"""Pure, incremental EBML/Matroska reading (DESIGN.md §6): bytes in, events out; no I/O, no clock."""
