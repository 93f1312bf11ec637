"""The README's examples stay true: its config file parses and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from engine.config import Secret, load_config

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
