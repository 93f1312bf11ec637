"""kill -9 while object calls run on the speculative path (``leader/speculation.py``).

Calls of ``Tally/add`` (each appends a unique token to its key's state and answers the
number of tokens) on a few keys are answered while the engine is killed with SIGKILL;
then it restarts on the same data. Every answered token must be in its key's state
exactly once, at the place its answer named; no token may appear twice (a speculative
attempt applied and then run again) and nothing answered may be missing.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.engine.partition.test_speculation import TALLY_APP, speculations, tokens_of
from tests.engine.test_invocations import call, register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints

KEYS = [f"key-{i}" for i in range(6)]
CALLS = 400


def test_speculative_object_calls_survive_kill_9(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, tmp_path: Path
) -> None:
    endpoint = service_endpoints.get(TALLY_APP)
    data_dir = tmp_path / "engine-data"
    engine = engine_factory(data_dir=data_dir)
    engine.start_and_wait()
    engine.wait_leading_all()
    register(engine, endpoint, use_http_11=True)
    answered: list[int] = []

    def one(i: int) -> tuple[str, str, Any] | None:
        key, token = KEYS[i % len(KEYS)], f"t{i}"
        try:
            status, body, _ = call(f"{engine.ingress_url}/Tally/{key}/add", token, timeout=30)
        except OSError:
            return None  # cut off by the kill: never answered
        if status != 200:
            return None
        answered.append(i)
        return key, token, body

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, i) for i in range(CALLS)]
        wait_until(lambda: len(answered) >= CALLS // 4, 120, "a quarter of the calls to be answered")
        started = speculations(engine, "started")
        engine.kill()
        results = [r for r in (f.result() for f in futures) if r is not None]
    assert started > 0, "no call took the speculative path"

    engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port, admin_port=engine.admin_port)
    engine.start_and_wait()
    engine.wait_leading_all()
    states = {key: tokens_of(engine, key) for key in KEYS}
    for key, tokens in states.items():
        assert len(tokens) == len(set(tokens)), f"{key}: a token applied twice: {tokens}"
    for key, token, answer in results:
        tokens = states[key]
        assert token in tokens, f"{key}: answered token {token} lost"
        assert tokens.index(token) + 1 == answer, f"{key}: {token} answered {answer}, is at {tokens.index(token) + 1}"
    assert engine.terminate() == 0
