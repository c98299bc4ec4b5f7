"""Benchmarks: scripts that measure LungKD and print what they measured (run as `python -m bench.<name>`)."""
