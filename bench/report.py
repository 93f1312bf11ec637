"""The durable-core ratio table: medians over rounds, spread, ratio, goal and verdict.

Every metric of every round is a sample; a row shows logstrate's median [min-max],
the reference system's median [min-max], the ratio of the medians (logstrate / restate)
and the goal of issue 12, with whether it is met.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.load import fmt
from bench.systems import SYSTEM_LABELS

Samples = dict[str, dict[str, list[float]]]
"""system -> metric (``phase.name``, or ``rss.role``) -> one value per round."""


@dataclass(frozen=True)
class Goal:
    """``kind``: ``le`` / ``ge`` compare the ratio with ``value``; ``le_abs`` compares
    logstrate's median (``worst``: its largest value) with ``value``; ``info`` has no goal."""

    kind: str
    value: float = 0.0
    unit: str = ""
    worst: bool = False

    def text(self) -> str:
        if self.kind == "le":
            return f"<={self.value:.1f}x"
        if self.kind == "ge":
            return f">={self.value:.1f}x"
        if self.kind == "le_abs":
            return ("=" if self.value == 0 else "<=") + f"{self.value:g}{self.unit}" + (" every round" if self.worst else "")
        return "(info)"

    def met(self, ours: list[float], ratio_value: float | None) -> str:
        if self.kind == "info":
            return ""
        if not ours:
            return "NO (no value: see errors)"
        if self.kind in ("le", "ge"):
            if ratio_value is None:
                return "?"
            ok = ratio_value <= self.value if self.kind == "le" else ratio_value >= self.value
            return "yes" if ok else "NO"
        if not ours:
            return "?"
        value = max(ours) if self.worst else statistics.median(ours)
        return "yes" if value <= self.value else "NO"


@dataclass(frozen=True)
class Row:
    title: str
    ours: str
    theirs: str | None
    goal: Goal
    versus: str = "restate"
    digits: int = 2
    system: str = "logstrate"


LE, GE, INFO = Goal("le", 1.0), Goal("ge", 1.0), Goal("info")
ROWS: tuple[Row, ...] = (
    Row("noop, 1 conn: p50 ms", "noop_seq.p50_ms", "noop_seq.p50_ms", LE),
    Row("noop, 1 conn: p99 ms", "noop_seq.p99_ms", "noop_seq.p99_ms", LE),
    Row("noop, N conns: req/s", "noop_concurrent.rps", "noop_concurrent.rps", GE, digits=1),
    Row("10x ctx.run: p50 ms vs h1 req/resp", "ten_steps_seq.p50_ms", "ten_steps_seq.p50_ms", LE),
    Row("10x ctx.run: p50 ms vs h2 bidi", "ten_steps_seq.p50_ms", "ten_steps_seq.p50_ms", LE, versus="restate-h2"),
    Row("10x ctx.run: per step ms vs h1", "ten_steps_seq.per_step_ms", "ten_steps_seq.per_step_ms", INFO),
    Row("10x ctx.run: per step ms vs h2", "ten_steps_seq.per_step_ms", "ten_steps_seq.per_step_ms", INFO, versus="restate-h2"),
    Row("10x ctx.run, both h2 bidi: p50 ms", "ten_steps_seq.p50_ms", "ten_steps_seq.p50_ms", LE,
        versus="restate-h2", system="logstrate-h2"),
    Row("counter add, K keys: req/s", "counter_add.rps", "counter_add.rps", GE, digits=1),
    Row("3-step /send: completed/s", "sends.completed_per_s", "sends.completed_per_s", GE, digits=1),
    Row("1,000 timers: all answered s", "timers.all_answered_s", "timers.all_answered_s", Goal("le_abs", 2.0, " s"), digits=3),
    Row("kill -9: recovery s", "kill_recovery.recovery_s", "kill_recovery.recovery_s", LE, digits=1),
    Row("kill -9: jobs lost", "kill_recovery.lost", "kill_recovery.lost", Goal("le_abs", 0, worst=True), digits=0),
    Row("idle CPU % core: engine vs server", "idle_cpu.pct.engine", "idle_cpu.pct.server", Goal("le_abs", 2.0, "%")),
    Row("idle CPU % core: broker", "idle_cpu.pct.broker", None, Goal("le_abs", 5.0, "%")),
    Row("CPU s per 1k noop: engine vs server", "noop_concurrent.cpu_per_1k.engine", "noop_concurrent.cpu_per_1k.server", LE, digits=3),
    Row("CPU s per 1k noop: broker", "noop_concurrent.cpu_per_1k.broker", None, INFO, digits=3),
    Row("CPU s per 1k noop: engine+broker vs server", "noop_concurrent.cpu_per_1k.engine+broker",
        "noop_concurrent.cpu_per_1k.server", INFO, digits=3),
    Row("peak RSS MiB: engine vs server", "rss.engine", "rss.server", LE, digits=1),
    Row("peak RSS MiB: broker", "rss.broker", None, INFO, digits=1),
)


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return fmt(median, digits)
    return f"{fmt(median, digits)} [{fmt(min(values), digits)}-{fmt(max(values), digits)}]"


def table(samples: Samples, connections: int, keys: int) -> list[str]:
    header = ("metric", "logstrate median [spread]", "restate median [spread]", "ratio", "goal", "met?")
    rows: list[tuple[str, ...]] = []
    for row in ROWS:
        ours = samples.get(row.system, {}).get(row.ours, [])
        theirs = samples.get(row.versus, {}).get(row.theirs, []) if row.theirs else []
        if not ours and not theirs:
            continue
        ratio_value = None
        if ours and theirs and statistics.median(theirs) != 0:
            ratio_value = statistics.median(ours) / statistics.median(theirs)
        title = row.title.replace("N conns", f"{connections} conns").replace("K keys", f"{keys} keys")
        rows.append((
            title, _cell(ours, row.digits), _cell(theirs, row.digits),
            "-" if ratio_value is None else f"{ratio_value:.2f}x", row.goal.text(), row.goal.met(ours, ratio_value),
        ))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.ljust(widths[i]) if i in (0, 4, 5) else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    return [line(header), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)]


def render(info: dict[str, Any], samples: Samples, runs: list[dict[str, Any]], args: Any) -> str:
    """The whole stdout report: context lines, the ratio table, notes and errors."""
    lines = [
        f"logstrate {info['logstrate']} vs restate-server {info['restate_server']}: the same endpoint code "
        f"(restate-sdk {info['restate_sdk']}, hypercorn {info['hypercorn']}), one endpoint process per system",
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}); broker, engine/restate-server, endpoint and load generator "
        "all share these cores",
        f"1/5/15-min load average: {info['load_average_at_start']} at start, {info['load_average_at_end']} at end "
        "(anything else running on the machine skews the numbers)",
        f"logstrate: {args.partitions} WAL partitions, "
        + (f"external Kafka {args.kafka}" if args.kafka else "local single-node Kafka")
        + ", HTTP/1.1 request/response; restate-server: single node, default settings, endpoint over HTTP/1.1 "
        "(restate (h1 req/resp)) and, for the 10-step rows, over HTTP/2 (restate (h2 bidi))",
        f"{args.rounds} round(s), systems alternating within each round; median [min-max] over rounds; "
        "ratio = logstrate median / restate median; the restate column is restate (h1 req/resp) unless the row says h2",
        "",
        *table(samples, args.connections, args.keys),
        "",
    ]
    per_invocation: dict[str, list[float]] = {}
    for run in runs:
        raw = run.get("phases", {}).get("ten_steps_seq", {}).get("raw", {})
        if raw.get("endpoint_requests_per_invocation") is not None:
            per_invocation.setdefault(run["system"], []).append(raw["endpoint_requests_per_invocation"])
    if per_invocation:
        lines.append("endpoint requests per 10-step invocation (1 = one stream, 11 = a round trip per step): "
                     + ", ".join(f"{SYSTEM_LABELS[s]} {statistics.median(v):.1f}" for s, v in per_invocation.items()))
    errors = 0
    for run in runs:
        where = f"round {run['round']} {SYSTEM_LABELS[run['system']]}"
        if run.get("failure"):
            lines.append(f"{where} did not complete: {run['failure']}")
        for key, outcome in run.get("phases", {}).items():
            errors += outcome["errors"]
            if outcome["errors"]:
                lines.append(f"{where} {key}: {outcome['errors']} errors, e.g. " + "; ".join(outcome["error_examples"][:3]))
    lines.append("errors: none" if errors == 0 and not any(r.get("failure") for r in runs) else f"errors: {errors} in total")
    return "\n".join(lines)
