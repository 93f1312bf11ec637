"""The engine's version, reported by ``GET /version`` and ``logstrate --version``."""

__version__ = "0.1.0"
