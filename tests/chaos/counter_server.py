"""A tiny external HTTP counter a crash test owns (the "payment provider" of the test).

``POST /increment {"key": k}`` counts one request and applies ``k`` once (idempotency
key, the pattern a real side effect uses); ``POST /finished`` records that a handler got
to its end. Both answer ``{"applied": <distinct keys so far>}``; ``/increment`` also
says ``"hits"``: how often its key was sent so far, this request included. A request
may name the handler attempt that sent it (``"attempt"``); :attr:`CounterServer.sent_by`
keeps, per key, who sent it and when, to tell executions apart in a failure report.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CounterServer:
    """Runs in a thread of the test process on a free loopback port."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.order: list[str] = []
        """Every ``/increment`` key in the order the requests came."""
        self.finished: list[dict[str, Any]] = []
        self.sent_by: dict[str, list[tuple[str, float]]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                answer: dict[str, int] = {}
                with server._lock:
                    if self.path == "/increment":
                        server.hits[str(payload["key"])] += 1
                        server.order.append(str(payload["key"]))
                        answer["hits"] = server.hits[str(payload["key"])]
                        if "attempt" in payload:
                            server.sent_by.setdefault(str(payload["key"]), []).append(
                                (str(payload["attempt"]), time.time()))
                    elif self.path == "/finished":
                        server.finished.append(payload)
                    answer["applied"] = len(server.hits)
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: the test reports what matters

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def applied(self) -> int:
        with self._lock:
            return len(self.hits)

    @property
    def requests(self) -> int:
        with self._lock:
            return sum(self.hits.values())

    def __enter__(self) -> CounterServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
