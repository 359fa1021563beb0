"""Benchmarks that print figures (run as modules: python -m yolo_attn.benchmarks.<name>)."""
