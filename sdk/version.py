"""The SDK's version and the identity it announces in ``x-restate-server``."""

from engine.version import __version__

SDK_IDENTITY = f"logstrate-sdk/{__version__}"
