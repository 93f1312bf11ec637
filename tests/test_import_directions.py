"""Dependencies point one way; this walks every module's imports (``ast``) and fails on
an import against the direction.

- ``restate_protocol`` (the service-protocol codec) imports nothing of the project: both
  the engine's invoker and the SDK build on it.
- ``sdk`` never imports the engine or the subscriptions, so it ships on its own.
- The partition state machine is a pure function of (tables, record): it never imports
  the invoker, the partition leader, the ingress or the admin API.
- The storage tables and the WAL format know nothing of who reads or writes them.
- Nothing in the engine or the subscriptions imports the SDK.

Imports inside functions and under ``TYPE_CHECKING`` count too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RULES: list[tuple[str, tuple[str, ...]]] = [
    ("restate_protocol", ("engine", "sdk", "subscriptions")),
    ("sdk", ("engine", "subscriptions")),
    (
        "engine.partition.state_machine",
        ("engine.invoker", "engine.partition.leader", "engine.partition.processor", "engine.ingress", "engine.admin"),
    ),
    ("engine.journal", ("engine.invoker", "engine.partition", "engine.ingress", "engine.admin")),
    ("engine.storage", ("engine.invoker", "engine.partition", "engine.ingress", "engine.admin")),
    # (engine.wal.topics creates every engine topic, the responses topic included, so the
    # WAL package may read the ingress's responses-topic layout.)
    ("engine.wal", ("engine.invoker", "engine.partition", "engine.admin", "engine.storage")),
    ("engine", ("sdk",)),
    ("subscriptions", ("sdk",)),
]


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; ``from a import b``
    yields ``a`` and ``a.b`` (b may be a submodule)."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    directory = ROOT.joinpath(*package.split("."))
    assert directory.is_dir(), f"{package} is not a package directory"
    found = []
    for path in sorted(directory.rglob("*.py")):
        for line, name in _imports(path):
            for prefix in forbidden:
                if _within(name, prefix) and not _within(name, package):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(found))


@pytest.mark.parametrize(("package", "forbidden"), RULES, ids=[rule[0] for rule in RULES])
def test_imports_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(package, forbidden) == []


def test_the_walker_sees_relative_nested_and_type_checking_imports(tmp_path: Path) -> None:
    package = tmp_path / "sdk" / "inner"
    package.mkdir(parents=True)
    (tmp_path / "sdk" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    module = package / "mod.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import sibling\n"
        "from ..other import thing\n"
        "if TYPE_CHECKING:\n"
        "    import engine.ids\n"
        "def f():\n"
        "    from engine.invoker import session\n"
    )
    names = {name for _, name in _imports(module, tmp_path)}
    assert {"sdk.sibling", "sdk.other", "sdk.other.thing", "engine.ids", "engine.invoker.session"} <= names


def test_sdk_and_engine_versions_agree() -> None:
    from engine.version import __version__ as engine_version
    from sdk.version import __version__ as sdk_version

    assert sdk_version == engine_version
