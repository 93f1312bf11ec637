"""Benchmarks: logstrate measured side by side with the real restate-server (see README.md)."""
