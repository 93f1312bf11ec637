"""Process and port helpers shared by the local-infrastructure scripts (stdlib only).

``compose/kafka_local.py`` and ``compose/schema_registry.py`` both run a Java process in
the background and must tell a live process from a zombie, stop it politely then
firmly, and check whether a port is free. In the foreground (``run``) they turn a
supervisor's stop signal into :class:`StopRequested`, as Ctrl-C is a KeyboardInterrupt,
so the server is stopped before the script exits instead of being left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = [
    "STOP_SIGNALS",
    "StopRequested",
    "alive",
    "live_pid",
    "port_taken",
    "send_signal",
    "stop_pid",
    "stop_signals_raise",
    "wait_gone",
]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""What a supervisor (or a closed terminal) sends to stop a foreground script."""


class StopRequested(BaseException):
    """A stop signal arrived; like KeyboardInterrupt, not an ``Exception``, so no
    ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def stop_signals_raise(what: str) -> Iterator[None]:
    """Inside the block, the first of :data:`STOP_SIGNALS` raises :class:`StopRequested`
    in the main thread; later ones are ignored (the stop in progress has its own
    deadline). The previous handlers are back after the block."""
    raised = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal raised
        if raised:
            print(f"[{what}] {signal.Signals(signum).name} again; already stopping", file=sys.stderr, flush=True)
            return
        raised = True
        raise StopRequested(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def send_signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child; ignore if it is not.
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def live_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def stop_pid(pid_file: Path, what: str, timeout: float) -> None:
    """SIGTERM the process of ``pid_file``, SIGKILL it after ``timeout``; forget the pid."""
    pid = live_pid(pid_file)
    if pid is None:
        return
    send_signal(pid, signal.SIGTERM)
    if not wait_gone(pid, timeout):
        print(f"[{what}] pid {pid} ignored SIGTERM for {timeout:.0f}s; killing it", file=sys.stderr, flush=True)
        send_signal(pid, signal.SIGKILL)
        wait_gone(pid, 10.0)
    pid_file.unlink(missing_ok=True)
