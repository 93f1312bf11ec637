"""The official ``restate`` CLI (npm @restatedev/restate, pinned) against a token-protected engine.

The CLI sends ``Authorization: Bearer $RESTATE_AUTH_TOKEN`` on every admin request,
``/version`` and ``/query`` included (its ``AdminClient::prepare`` adds ``bearer_auth``
when the environment or its config has a token). With the engine's admin token it
registers a deployment, lists deployments and services, runs SQL, lists invocations
and reads state; without it, or with another token, it fails and shows the engine's message.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.engine.admin.test_restate_cli import CLI
from tests.fixtures.engine import EngineProcess
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.security.auth_client import ADMIN_TOKEN, INGRESS_TOKEN, bearer, request


def _cli(engine: EngineProcess, tmp_path: Path, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "RESTATE_AUTH_TOKEN"},
        "RESTATE_ADMIN_URL": engine.admin_url,
        "RESTATE_INGRESS_URL": engine.ingress_url,
        "RESTATE_CLI_CONFIG_HOME": str(tmp_path / "restate-cli"),
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    if token is not None:
        env["RESTATE_AUTH_TOKEN"] = token
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=60)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_cli_works_with_restate_auth_token(
    engine_factory: Callable[..., EngineProcess], greeter_endpoint: ServiceEndpoint, tmp_path: Path,
) -> None:
    assert CLI.exists(), f"{CLI} is missing; scripts/bootstrap.sh installs it"
    engine = engine_factory(env={"LOGSTRATE_ADMIN_TOKEN": ADMIN_TOKEN, "LOGSTRATE_INGRESS_TOKEN": INGRESS_TOKEN})
    engine.start_and_wait()

    for token in (None, "not-the-token"):
        refused = _cli(engine, tmp_path, token, "deployments", "list")
        assert refused.returncode != 0, refused
        output = refused.stdout + refused.stderr
        assert "401" in output or "Unauthorized" in output or "bearer token" in output, output

    registered = _ok(_cli(engine, tmp_path, ADMIN_TOKEN, "deployments", "register", greeter_endpoint.url, "--yes"))
    assert "Greeter" in registered and "Counter" in registered, registered
    assert greeter_endpoint.url.rstrip("/") in _ok(_cli(engine, tmp_path, ADMIN_TOKEN, "deployments", "list"))
    services = _ok(_cli(engine, tmp_path, ADMIN_TOKEN, "services", "list"))
    assert any("Counter" in line and "virtual object" in line for line in services.splitlines()), services

    reply = request("POST", f"{engine.ingress_url}/Counter/alice/add", 4, bearer(INGRESS_TOKEN))
    assert reply.status == 200, reply
    invocation_id = reply.headers["x-restate-id"]
    rows = _ok(_cli(engine, tmp_path, ADMIN_TOKEN, "sql",
                    f"SELECT id, target_service_key FROM sys_invocation WHERE id = '{invocation_id}'"))
    assert invocation_id in rows and "alice" in rows, rows
    listed = _ok(_cli(engine, tmp_path, ADMIN_TOKEN, "invocations", "ls", "--service", "Counter", "--all"))
    assert invocation_id in listed, listed
    state = _ok(_cli(engine, tmp_path, ADMIN_TOKEN, "kv", "get", "Counter", "alice"))
    assert "count" in state, state
