"""Every command of the official ``restate`` CLI (npm @restatedev/restate 1.7.12) the
issue lists, run against our engine and against restate-server with the same services
and the same invocations: the outputs are the same once ids, timestamps, ages, ports and
timings are normalised (:func:`normalised`). Where only the order of rows can differ
(restate-server lists services and handlers in hash order), the lines are compared as
sorted. One engine for the module; restate-server is the session's.

What is not compared, and why, is said at each place: restate-server gives every
ingress request an idempotency key of its own (the ``Idempotency key:`` line), and it
forgets an invocation cancelled while still in the inbox where logstrate keeps it,
completed with ``[409] canceled``, for the completion retention.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engine.admin.test_restate_cli import CLI
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic
from tests.fixtures.ports import wait_until
from tests.fixtures.restate_server import RestateServer
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import System, http, module_engine

QUERY_APP = "tests.fixtures.official_sdk_query:app"
PING_APP = "tests.fixtures.official_sdk_cli:app"
CALLS_APP = "tests.fixtures.official_sdk_cli_calls:app"

_REPLACED = [
    (re.compile(r"inv_[0-9A-Za-z]+"), "INV"),
    (re.compile(r"dp_[0-9A-Za-z]+"), "DP"),
    (re.compile(r"sub_[0-9A-Za-z]+"), "SUB"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+00:00"), "TS"),
    (re.compile(r"\w{3} \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+00:00"), "TS"),
    (re.compile(r"\([^()]* (ago|left)\)"), "(AGE)"),
    (re.compile(r"\d+ (?:days?|hours?|minutes?|seconds?|ms)(?:(?:, | and )\d+ (?:days?|hours?|minutes?|seconds?|ms))*"),
     "DURATION"),
    # Shown once an invocation holds its key for a while: the two systems' invocations
    # were started seconds apart, so one may have crossed the threshold first.
    (re.compile(r"\(DURATION[^()]*\)"), "(AGE)"),
    (re.compile(r"Suspended for DURATION\. The lock will not be released until this invocation is complete"), ""),
    (re.compile(r"http://127\.0\.0\.1:\d+/?"), "URL"),
    (re.compile(r"took \S+"), "took T"),
]


def normalised(text: str) -> list[str]:
    """``text``'s non-empty lines with ids, times, ages, local URLs and whitespace runs
    made uniform; restate-server's ``Idempotency key:`` lines left out."""
    lines = []
    for line in text.splitlines():
        if "Idempotency key:" in line:
            continue
        for pattern, replacement in _REPLACED:
            line = pattern.sub(replacement, line)
        line = " ".join(line.split())
        if line:
            lines.append(line)
    return lines


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: list[str]
    stderr: list[str]


def restate(system: System, config: Path, *args: str) -> Run:
    env = {
        **os.environ,
        "RESTATE_ADMIN_URL": system.admin_url,
        "RESTATE_INGRESS_URL": system.ingress_url,
        "RESTATE_CLI_CONFIG_HOME": str(config),
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    env.pop("CI", None)
    done = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=60)
    return Run(done.returncode, normalised(done.stdout), normalised(done.stderr))


@pytest.fixture(scope="module")
def our_engine(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    for engine in module_engine(kafka, tmp_path_factory, "cli-commands"):
        engine.wait_leading_all()
        yield engine


@dataclass(frozen=True)
class Scenario:
    """One system with the query services registered and the same invocations made."""

    system: System
    held: str
    """``QHolder/k1/hold`` sleeping ten minutes (suspended), holding ``k1``."""
    waiting: str
    """A second ``QHolder/k1/hold``, in ``k1``'s inbox (pending)."""
    flow: str
    """``QFlow/w1/run``, waiting on its promise (suspended)."""
    counted: str
    """``QCounter/alice/add`` with 5 (completed)."""
    calling: str
    """``CliCaller/wait`` waiting on its call to ``CliSleeper/s1/nap`` (suspended)."""


def _status(system: System, invocation_id: str) -> str | None:
    status, body = http("POST", f"{system.admin_url}/query",
                        {"query": f"SELECT status FROM sys_invocation WHERE id = '{invocation_id}'"},
                        headers={"accept": "application/json"})
    assert status == 200, body
    return body["rows"][0]["status"] if body["rows"] else None


def _scenario(system: System, endpoint: ServiceEndpoint, calls: ServiceEndpoint) -> Scenario:
    system.register(endpoint.url)
    system.register(calls.url)
    counted = system.invoke("/QCounter/alice/add", 5)
    assert counted[0] == 200, counted
    system.ok("/QCaller/call", "bob")
    ids = {}
    for name, path, body in (("held", "/QHolder/k1/hold/send", 600000), ("waiting", "/QHolder/k1/hold/send", 1000),
                             ("flow", "/QFlow/w1/run/send", "x"), ("calling", "/CliCaller/wait/send", "s1")):
        status, sent = system.invoke(path, body)
        assert status == 202, sent
        ids[name] = sent["invocationId"]
    found = {}

    def settled() -> bool:
        for name in ids:
            found[name] = _status(system, ids[name])
        return found == {"held": "suspended", "waiting": "pending", "flow": "suspended", "calling": "suspended"}

    wait_until(settled, 60, f"the invocations on {system.name} to settle ({found})", interval=0.2)
    status, listed = http("POST", f"{system.admin_url}/query",
                          {"query": "SELECT id FROM sys_invocation WHERE target = 'QCounter/alice/add'"},
                          headers={"accept": "application/json"})
    return Scenario(system, ids["held"], ids["waiting"], ids["flow"], listed["rows"][0]["id"], ids["calling"])


@pytest.fixture(scope="module")
def both(our_engine: EngineProcess, restate_server: RestateServer,
         service_endpoints: ServiceEndpoints) -> tuple[Scenario, Scenario]:
    endpoint, calls = service_endpoints.start_all([(QUERY_APP, "cli-commands"), (CALLS_APP, "cli-commands")])
    ours = _scenario(System("logstrate", our_engine.admin_url, our_engine.ingress_url), endpoint, calls)
    theirs = _scenario(System("restate-server", restate_server.admin_url, restate_server.ingress_url), endpoint,
                       calls)
    return ours, theirs


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keeps the CLI away from the user's ~/.config/restate."""
    return tmp_path_factory.mktemp("restate-cli")


def same(both: tuple[Scenario, Scenario], config: Path, *args: str, ordered: bool = True, drop: str | None = None,
         listing: bool = False,
         ours_args: tuple[str, ...] | None = None, theirs_args: tuple[str, ...] | None = None) -> Run:
    """Runs ``restate *args`` on both systems (per-system arguments where given) and
    checks the outputs are the same (leaving out lines containing ``drop``; with
    ``listing``, the invocations of an ``ls`` in any order: two created in one
    millisecond have no order); our run."""
    ours = restate(both[0].system, config, *(ours_args or args))
    theirs = restate(both[1].system, config, *(theirs_args or args))
    label = " ".join(ours_args or args)
    assert ours.returncode == theirs.returncode, (label, ours, theirs)
    for part in ("stdout", "stderr"):
        mine, reference = getattr(ours, part), getattr(theirs, part)
        if drop is not None:
            mine, reference = [x for x in mine if drop not in x], [x for x in reference if drop not in x]
        if not ordered:
            mine, reference = _unordered(mine), _unordered(reference)
        if listing:
            mine, reference = _blocks(mine), _blocks(reference)
        assert mine == reference, f"restate {label}: {part} differs\nours:\n" + "\n".join(mine) + \
            "\nrestate-server:\n" + "\n".join(reference)
    return ours


def _unordered(lines: list[str]) -> list[str]:
    """``lines`` sorted, and the items of each ``[a, b]`` list in them too."""
    return sorted(re.sub(r"\[([^\[\]]*,[^\[\]]*)\]", lambda m: "[" + ", ".join(sorted(m[1].split(", "))) + "]", line)
                  for line in lines)


def _blocks(lines: list[str]) -> list[str]:
    """An ``invocations ls`` output with its invocations (``❯`` blocks) sorted."""
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith("❯") or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    return [line for block in sorted(blocks) for line in block]


def test_invocations_list_and_describe(both: tuple[Scenario, Scenario], config: Path) -> None:
    pending = same(both, config, "invocations", "ls", "--status", "pending", listing=True)
    assert any("QHolder/k1/hold" in line for line in pending.stdout), pending
    suspended = same(both, config, "invocations", "ls", "--status", "suspended", "--service", "QHolder", listing=True)
    assert any("suspended" in line for line in suspended.stdout), suspended
    same(both, config, "invocations", "ls", "--status", "suspended,pending", listing=True)
    done = same(both, config, "invocations", "ls", "--all", "--service", "QCounter", listing=True)
    assert "Invoked by: QCaller/call INV" in done.stdout, done  # the caller, named by its target
    same(both, config, "invocations", "ls", "--all", "--service", "QCounter", "--key", "alice", listing=True)
    ours, theirs = both
    held = same(both, config, "invocations", "describe", ours_args=("invocations", "describe", ours.held),
                theirs_args=("invocations", "describe", theirs.held))
    assert any(line.startswith("├──── #1 [TS] Command: Sleep until TS") for line in held.stdout), held
    flow = same(both, config, "invocations", "describe", ours_args=("invocations", "describe", ours.flow),
                theirs_args=("invocations", "describe", theirs.flow))
    assert "├──── #1 [TS] Command: GetPromise key approval" in flow.stdout, flow
    # A call in flight: its target and the callee's id.
    calling = same(both, config, "invocations", "describe", ours_args=("invocations", "describe", ours.calling),
                   theirs_args=("invocations", "describe", theirs.calling))
    assert "├──── #1 [TS] Command: Call CliSleeper/s1/nap INV" in calling.stdout, calling


def test_sql(both: tuple[Scenario, Scenario], config: Path) -> None:
    out = same(both, config, "sql", "SELECT service_key, key, value_utf8 FROM state WHERE service_name = 'QCounter' "
                                    "ORDER BY service_key, key")
    assert any("alice" in line and "count" in line for line in out.stdout), out


def test_services_and_deployments(both: tuple[Scenario, Scenario], config: Path) -> None:
    listed = restate(both[0].system, config, "services", "list")
    reference = restate(both[1].system, config, "services", "list")
    ours_q = sorted(line for line in listed.stdout if re.search(r"\bQ[A-Z]", line))
    theirs_q = sorted(line for line in reference.stdout if re.search(r"\bQ[A-Z]", line))
    assert ours_q == theirs_q and len(ours_q) == 4, (listed, reference)
    same(both, config, "services", "describe", "QCounter", ordered=False)
    same(both, config, "services", "describe", "QFlow", ordered=False)
    same(both, config, "services", "status", "QHolder", ordered=False)
    same(both, config, "services", "status", "QCounter", ordered=False)
    view = same(both, config, "services", "config", "view", "QCounter")
    assert view.stdout, view

    deployment = {}
    for scenario in both:
        status, body = http("GET", f"{scenario.system.admin_url}/deployments")
        deployment[scenario.system.name] = next(
            d["id"] for d in body["deployments"] if any(s["name"] == "QCounter" for s in d["services"]))
    described = same(both, config, "deployments", "describe", ordered=False,
                     ours_args=("deployments", "describe", deployment["logstrate"]),
                     theirs_args=("deployments", "describe", deployment["restate-server"]))
    assert "Endpoint: URL" in described.stdout and "- QCounter" in described.stdout, described
    # An active deployment is not removed without --force, on both.
    refused = same(both, config, "deployments", "remove", ordered=False,
                   ours_args=("deployments", "remove", deployment["logstrate"], "--yes"),
                   theirs_args=("deployments", "remove", deployment["restate-server"], "--yes"))
    assert refused.returncode == 1 and any("--force" in line for line in refused.stderr), refused


def test_deployments_register_list_and_remove(both: tuple[Scenario, Scenario], config: Path,
                                              service_endpoints: ServiceEndpoints) -> None:
    endpoint = service_endpoints.get(PING_APP, "cli-commands")
    registered = same(both, config, "deployments", "register", endpoint.url, "--yes", "--use-http1.1", ordered=False)
    assert any("CliPing" in line for line in registered.stdout), registered
    ids = {}
    for scenario in both:
        assert scenario.system.ok("/CliPing/ping", "x") == "pong x"
        status, body = http("GET", f"{scenario.system.admin_url}/deployments")
        ids[scenario.system.name] = next(
            d["id"] for d in body["deployments"] if any(s["name"] == "CliPing" for s in d["services"]))
    ours_list = restate(both[0].system, config, "deployments", "list")
    theirs_list = restate(both[1].system, config, "deployments", "list")
    assert [line for line in ours_list.stdout if "CliPing" in line] == \
        [line for line in theirs_list.stdout if "CliPing" in line], (ours_list, theirs_list)
    removed = same(both, config, "deployments", "remove", ordered=False,
                   ours_args=("deployments", "remove", ids["logstrate"], "--force", "--yes"),
                   theirs_args=("deployments", "remove", ids["restate-server"], "--force", "--yes"))
    assert removed.returncode == 0, removed
    for scenario in both:
        status, body = http("GET", f"{scenario.system.admin_url}/deployments/{ids[scenario.system.name]}")
        assert status == 404, (scenario.system.name, status, body)


def test_state_get_and_clear(both: tuple[Scenario, Scenario], config: Path) -> None:
    got = same(both, config, "kv", "get", "QCounter", "alice", ordered=False)
    assert "count 5" in got.stdout, got
    # The CLI sends the state's version, computed as Restate does; a stale one is refused.
    same(both, config, "kv", "clear", "QCounter/alice", "--yes", ordered=False)
    for scenario in both:
        _wait(lambda: not _state_keys(scenario.system, "alice"), "alice's state to be cleared")
    cleared = same(both, config, "kv", "get", "QCounter", "alice")
    assert "count 5" not in cleared.stdout, cleared
    # The whole service: every key's state.
    same(both, config, "kv", "clear", "QCounter", "--yes", ordered=False)
    for scenario in both:
        _wait(lambda: not _state_keys(scenario.system, "bob"), "bob's state to be cleared")


def _wait(condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, 30, what, interval=0.2)


def _state_keys(system: System, key: str) -> list[str]:
    status, body = http("POST", f"{system.admin_url}/query",
                        {"query": f"SELECT key FROM state WHERE service_name = 'QCounter' AND service_key = '{key}'"},
                        headers={"accept": "application/json"})
    assert status == 200, body
    return [row["key"] for row in body["rows"]]


def test_cancel_kill_and_purge(both: tuple[Scenario, Scenario], config: Path) -> None:
    ours, theirs = both
    # Cancel by id: the one waiting in the inbox.
    cancelled = same(both, config, "invocations", "cancel", ours_args=("invocations", "cancel", ours.waiting, "--yes"),
                     theirs_args=("invocations", "cancel", theirs.waiting, "--yes"))
    assert "[OK]: Cancelled 1 invocations" in cancelled.stdout, cancelled
    # Kill by query: every running invocation of the key.
    killed = same(both, config, "invocations", "kill", "QHolder/k1", "--yes")
    assert "[OK]: Killed 1 invocations" in killed.stdout, killed
    for scenario in both:
        _wait(lambda: _status(scenario.system, scenario.held) == "completed", "the kill to be applied")
    # restate-server forgets an invocation cancelled in the inbox; logstrate keeps it
    # completed with "[409] canceled" for the retention. Only the killed one compares.
    ours_ls = restate(ours.system, config, "invocations", "ls", "--all", "--service", "QHolder")
    theirs_ls = restate(theirs.system, config, "invocations", "ls", "--all", "--service", "QHolder")
    assert "Error: [409] killed" in ours_ls.stdout and "Error: [409] killed" in theirs_ls.stdout
    assert "Error: [409] canceled" in ours_ls.stdout, ours_ls
    # Purge by id: refused for one still running (the flow), the same on both.
    refused = same(both, config, "invocations", "purge", ours_args=("invocations", "purge", ours.flow, "--yes"),
                   theirs_args=("invocations", "purge", theirs.flow, "--yes"))
    assert refused.returncode == 1 and any("only works on completed" in line for line in refused.stderr), refused
    # Cancel by query (the flow, a workflow waiting on its promise), then purge by id.
    same(both, config, "invocations", "cancel", "QFlow/w1", "--yes")
    for scenario in both:
        _wait(lambda: _status(scenario.system, scenario.flow) == "completed", "the flow to be cancelled")
    purged = same(both, config, "invocations", "purge", ours_args=("invocations", "purge", ours.flow, "--yes"),
                  theirs_args=("invocations", "purge", theirs.flow, "--yes"))
    assert "[OK]: Purged 1 invocations" in purged.stdout, purged
    # Purge by query: QCounter's completed invocations.
    purged = same(both, config, "invocations", "purge", "QCounter", "--yes", ordered=False)
    assert "[OK]: Purged 2 invocations" in purged.stdout, purged
    for scenario in both:
        _wait(lambda: _status(scenario.system, scenario.counted) is None, "the purge to be applied")


def test_kafka_clusters_and_subscriptions(both: tuple[Scenario, Scenario], config: Path, kafka: KafkaBroker,
                                          service_endpoints: ServiceEndpoints) -> None:
    topic = f"cli-commands-{uuid.uuid4().hex[:8]}"
    create_topic(kafka.bootstrap_servers, topic, 1)
    created = same(both, config, "--yes", "kc", "create", "clicluster", f"bootstrap.servers={kafka.bootstrap_servers}",
                   ordered=False)
    assert created.returncode == 0, created
    listed = same(both, config, "kc", "list", ordered=False)
    assert any("clicluster" in line for line in listed.stdout), listed
    same(both, config, "kc", "describe", "clicluster", ordered=False)
    sub = same(both, config, "--yes", "sub", "create", f"kafka://clicluster/{topic}", "service://QCounter/add",
               ordered=False)
    assert sub.returncode == 0, sub
    # restate-server also names its consumers' client.id in the options (always
    # "restate"); logstrate's consumers are named per process, not by an option.
    ours_subs = restate(both[0].system, config, "sub", "list")
    theirs_subs = restate(both[1].system, config, "sub", "list")
    assert [line.rsplit(" ", 1)[0] for line in ours_subs.stdout] == \
        [line.rsplit(" ", 1)[0] for line in theirs_subs.stdout], (ours_subs, theirs_subs)
    assert any("kafka://clicluster/" in line for line in ours_subs.stdout), ours_subs
    ids = {}
    for scenario in both:
        status, body = http("GET", f"{scenario.system.admin_url}/subscriptions")
        ids[scenario.system.name] = next(s["id"] for s in body["subscriptions"] if "clicluster" in s["source"])
    described = same(both, config, "sub", "describe", ordered=False, drop="client.id",
                     ours_args=("sub", "describe", ids["logstrate"]), theirs_args=("sub", "describe", ids["restate-server"]))
    assert any("group.id" in line for line in described.stdout), described
    same(both, config, "sub", "delete", ordered=False, ours_args=("sub", "delete", ids["logstrate"], "--yes"),
         theirs_args=("sub", "delete", ids["restate-server"], "--yes"))
    same(both, config, "kc", "delete", "clicluster", "--yes", ordered=False)
    gone = same(both, config, "kc", "list", ordered=False)
    assert not any("clicluster" in line for line in gone.stdout), gone
