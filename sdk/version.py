"""The SDK's version and the identity it announces in ``x-restate-server``.

The SDK ships without the engine, so it carries its own version; the two are released
together from this repository (``tests/test_import_directions.py`` checks they agree).
"""

__version__ = "0.1.0"

SDK_IDENTITY = f"logstrate-sdk/{__version__}"
