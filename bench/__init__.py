"""Benchmarks: scripts that print figures, ours side by side with a baseline, medians."""
