"""``python -m sdk module:app``: serve a module's services with the SDK's aiohttp server.

::

    python -m sdk examples.greeter.sdk_greeter:app --port 9080
    python -m sdk mymodule                  # the attribute defaults to ``app``

The attribute may be an ``sdk.app(...)``, an :class:`~sdk.endpoint.Endpoint`, one
service, or a list of services. The module is imported from the current directory
first, like hypercorn does. A module can also serve itself (``python -m mymodule``)::

    if __name__ == "__main__":
        sdk.serve([greeter, counter])
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from sdk.endpoint import AsgiApp, Endpoint
from sdk.server import serve
from sdk.service import ServiceDef

__all__ = ["load_services", "main"]

log = logging.getLogger("sdk.cli")


class UsageError(Exception):
    """The command line names something that cannot be served."""


def load_services(spec: str) -> Endpoint:
    """Import ``module[:attribute]`` and turn the attribute into an :class:`Endpoint`.

    Raises:
        UsageError: the module or attribute is missing, or is not services.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise UsageError(f"expected module:attribute, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from exc
    name = attribute or "app"
    if not hasattr(module, name):
        raise UsageError(f"module {module_name!r} has no attribute {name!r}")
    value: Any = getattr(module, name)
    if isinstance(value, AsgiApp):
        return value.endpoint
    if isinstance(value, Endpoint):
        return value
    if isinstance(value, ServiceDef):
        return Endpoint([value])
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, ServiceDef) for v in value):
        return Endpoint(value)
    raise UsageError(
        f"{spec} is a {type(value).__name__}; expected sdk.app(...), an Endpoint, "
        "a service or a list of services"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sdk``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m sdk",
        description="Serve services written with logstrate's SDK (HTTP/1.1, request/response).",
    )
    parser.add_argument("app", help="module:attribute (attribute defaults to app)")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=9080, help="port to bind (default 9080)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.getcwd())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        endpoint = load_services(args.app)
    except UsageError as exc:
        parser.error(str(exc))
    log.info("serving %s on %s:%d", ", ".join(endpoint.services), args.host, args.port)
    try:
        serve(endpoint, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0
