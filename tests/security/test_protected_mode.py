"""Protected mode: no admin token, no admin API beyond loopback unless the operator says so.

Real ``logstrate serve`` processes: with ``--admin-bind 0.0.0.0:<port>`` and no token the
engine exits at once (before it even reaches Kafka) with an error that names every way
out; with the explicit flag, its env variable or a token it starts and serves. The
default admin bind is loopback, so a plain start needs neither.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.auth import check_protected_mode, is_loopback_host
from engine.config import EngineConfig, Secret, load_config
from engine.errors import StartupError
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import free_port
from tests.security.auth_client import bearer, request


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "localhost", "::ffff:127.0.0.1"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "192.168.0.1", "::ffff:10.0.0.1", "fe80::1"])
def test_addresses_beyond_loopback(host: str) -> None:
    assert not is_loopback_host(host)


def test_the_default_admin_bind_is_loopback() -> None:
    cfg = load_config(env={})
    assert cfg.admin_bind == "127.0.0.1:9070"
    check_protected_mode(cfg)
    with pytest.raises(StartupError, match="protected mode"):
        check_protected_mode(EngineConfig(admin_bind="0.0.0.0:9070"))
    check_protected_mode(EngineConfig(admin_bind="0.0.0.0:9070", admin_token=Secret("t")))
    check_protected_mode(EngineConfig(admin_bind="0.0.0.0:9070", admin_allow_unauthenticated=True))
    allowed = load_config(env={"LOGSTRATE_ADMIN_ALLOW_UNAUTHENTICATED": "true", "LOGSTRATE_ADMIN_BIND": "0.0.0.0:1"})
    assert allowed.admin_allow_unauthenticated
    check_protected_mode(allowed)


def test_toml_settings(tmp_path: Path) -> None:
    toml = tmp_path / "logstrate.toml"
    toml.write_text('admin_bind = "0.0.0.0:9070"\nadmin_allow_unauthenticated = true\n'
                    'admin_token = "s3cr3t-adm"\ningress_token = "s3cr3t-ing"\n')
    cfg = load_config(config_file=toml, env={})
    assert cfg.admin_allow_unauthenticated
    assert isinstance(cfg.admin_token, Secret) and cfg.admin_token.get_secret_value() == "s3cr3t-adm"
    assert isinstance(cfg.ingress_token, Secret) and cfg.ingress_token.get_secret_value() == "s3cr3t-ing"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg)


def test_a_wildcard_admin_bind_without_token_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSTRATE_")}
    result = subprocess.run(
        [sys.executable, "-m", "engine", "serve", "--admin-bind", f"0.0.0.0:{port}",
         "--ingress-bind", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
         # Unreachable on purpose: the check comes before Kafka.
         "--kafka-bootstrap-servers", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 1, result
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("logstrate: error: protected mode"), result.stderr
    for fix in ("LOGSTRATE_ADMIN_TOKEN", "--admin-token", "--admin-allow-unauthenticated",
                "LOGSTRATE_ADMIN_ALLOW_UNAUTHENTICATED", "--admin-bind 127.0.0.1:9070", f"0.0.0.0:{port}"):
        assert fix in line, (fix, line)


@pytest.mark.parametrize("how", ["flag", "env", "token"])
def test_the_operator_can_open_it_explicitly(engine_factory: Callable[..., EngineProcess], how: str) -> None:
    port = free_port()
    args = ["--admin-bind", f"0.0.0.0:{port}"]
    env: dict[str, str] = {}
    if how == "flag":
        args.append("--admin-allow-unauthenticated")
    elif how == "env":
        env["LOGSTRATE_ADMIN_ALLOW_UNAUTHENTICATED"] = "true"
    else:
        env["LOGSTRATE_ADMIN_TOKEN"] = "opened-with-a-token"
    engine = engine_factory(extra_args=args, env=env, admin_port=port)
    engine.start_and_wait()
    headers = bearer(env["LOGSTRATE_ADMIN_TOKEN"]) if how == "token" else {}
    assert request("GET", f"{engine.admin_url}/deployments", headers=headers).status == 200
    if how == "token":
        assert request("GET", f"{engine.admin_url}/deployments").status == 401
