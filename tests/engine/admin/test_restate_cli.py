"""The official ``restate`` CLI (npm @restatedev/restate, pinned) against our admin API."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.engine.test_invocations import call
from tests.fixtures.engine import EngineProcess
from tests.fixtures.service_endpoint import ServiceEndpoint

CLI = Path(__file__).resolve().parents[3] / "compose" / "restate-server" / "node_modules" / ".bin" / "restate"


def restate_cli(engine: EngineProcess, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RESTATE_ADMIN_URL": engine.admin_url,
        "RESTATE_INGRESS_URL": engine.ingress_url,
        # Keep the CLI away from the user's ~/.config/restate.
        "RESTATE_CLI_CONFIG_HOME": str(tmp_path / "restate-cli"),
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"restate {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def test_cli_registers_a_deployment_and_lists_services(
    engine: EngineProcess, greeter_endpoint: ServiceEndpoint, tmp_path: Path
) -> None:
    assert CLI.exists(), f"{CLI} is missing; scripts/bootstrap.sh installs it"
    registered = restate_cli(engine, tmp_path, "deployments", "register", greeter_endpoint.url, "--yes")
    assert "Greeter" in registered.stdout and "Counter" in registered.stdout, registered.stdout

    listed = restate_cli(engine, tmp_path, "services", "list")
    lines = listed.stdout.splitlines()
    assert any("Greeter" in line for line in lines), listed.stdout
    assert any("Counter" in line and "virtual object" in line for line in lines), listed.stdout

    deployments = restate_cli(engine, tmp_path, "deployments", "list")
    assert greeter_endpoint.url.rstrip("/") in deployments.stdout, deployments.stdout

    # What the CLI registered is what the ingress serves.
    status, body, _ = call(f"{engine.ingress_url}/Greeter/greet", "CLI")
    assert status == 200, body
