"""The benchmark: ``make bench``. See docs/PERFORMANCE.md."""
