"""Live relay (DESIGN.md §6): GOP cutter and header writer (pure), fan-out hub and feed pulling (async)."""
