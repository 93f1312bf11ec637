"""The README's examples stay true: its config file parses, its commands exist, and its
``restate`` CLI lines run against a real engine."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from engine.config import Secret, load_config
from tests.engine.admin.test_restate_cli import restate_cli
from tests.engine.test_invocations import call, register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.service_endpoint import ServiceEndpoint

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_toml_example_is_a_valid_config(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has a TOML example"
    toml = tmp_path / "logstrate.toml"
    toml.write_text(blocks[0])
    cfg = load_config(config_file=toml, env={})
    assert cfg.kafka.partitions == 24
    assert cfg.kafka.replication_factor == 3
    assert isinstance(cfg.kafka.properties["sasl.password"], Secret)
    assert cfg.kafka.client_config()["sasl.password"] == "change-me"


def test_readme_make_targets_exist() -> None:
    makefile = (README.parent / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", README.read_text(), re.M):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lacks the README's `make {target}`"
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def _cli_lines() -> list[list[str]]:
    """The ``restate ...`` commands of the README's "Managing invocations" section."""
    text = README.read_text()
    section = text[text.index("## Managing invocations"):]
    section = section[: section.index("\n## ", 1)]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith("restate "):
                lines.append(shlex.split(line.split("  #")[0])[1:])
    return lines


_READS = {("invocations", "ls"), ("invocations", "describe"), ("kv", "get"), ("services", "status"), ("sql",)}


def test_readme_cli_examples_run(engine: EngineProcess, greeter_endpoint: ServiceEndpoint, tmp_path: Path) -> None:
    """Each CLI line of the README parses with the pinned CLI; the reads run against a
    real engine with the example's Counter, the invocation id being a real one."""
    lines = _cli_lines()
    assert len(lines) >= 8, lines
    register(engine, greeter_endpoint)
    status, _, headers = call(f"{engine.ingress_url}/Counter/alice/add", 5)
    assert status == 200
    invocation_id = headers["x-restate-id"]
    for args in lines:
        args = [invocation_id if a == "inv_1..." else a for a in args]
        if tuple(args[:2]) in _READS or tuple(args[:1]) in _READS:
            out = restate_cli(engine, tmp_path, *args)
            if args[:2] == ["invocations", "describe"]:
                assert "Counter/alice/add" in out.stdout, out.stdout
            if args[:2] == ["kv", "get"]:
                assert "count" in out.stdout and "5" in out.stdout, out.stdout
        else:
            restate_cli(engine, tmp_path, *args, "--help")
