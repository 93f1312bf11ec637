"""Which rows a query can need: equality constraints read off DataFusion's optimized plan.

The tables are planned once with empty data (:mod:`engine.query.engine`), registered as
pyarrow datasets, which accept filter pushdown: DataFusion's optimizer moves every
predicate it can as close to each table scan as the semantics allow (through aliases,
views, subqueries, into the preserved side of joins) and attaches it to the scan. From
those, and from a ``Filter`` sitting directly on a scan, this module keeps the conjuncts
``column = literal``, ``column IN (literals)`` and ORs of equalities on one column, for
the columns a table can place or index by (:attr:`~engine.query.spec.TableSpec.pushdown`).

A scan's :class:`Constraints` are therefore a *necessary* condition: every row the scan
can return satisfies them. Rows are then loaded for each scan of a table (the union
over its scans), and DataFusion evaluates the whole query, every predicate included, on
them, so a constraint read too loosely costs rows, never correctness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from datafusion import Expr
from datafusion.plan import LogicalPlan

__all__ = ["ANY", "Constraints", "ScanValue", "scans_of"]

ScanValue = str | int
"""A literal a constraint compares with: strings and integers only."""


@dataclass(frozen=True, slots=True)
class Constraints:
    """Per column, the only values the rows of one scan can have (absent: any value)."""

    values: Mapping[str, frozenset[ScanValue]] = field(default_factory=dict)

    def get(self, column: str) -> frozenset[ScanValue] | None:
        """The allowed values of ``column``, or ``None`` when it is not constrained."""
        return self.values.get(column)

    def strings(self, column: str) -> frozenset[str] | None:
        """The allowed string values of ``column`` (non-strings dropped), or ``None``."""
        found = self.values.get(column)
        return None if found is None else frozenset(v for v in found if isinstance(v, str))

    def ints(self, column: str) -> frozenset[int] | None:
        """The allowed integer values of ``column`` (non-integers dropped), or ``None``."""
        found = self.values.get(column)
        return None if found is None else frozenset(v for v in found if isinstance(v, int))

    def allows(self, column: str, value: object) -> bool:
        """Whether a row with ``value`` in ``column`` can be among the scan's rows."""
        found = self.values.get(column)
        return found is None or value in found

    def to_json(self) -> dict[str, list[ScanValue]]:
        return {column: sorted(values, key=str) for column, values in self.values.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Iterable[Any]]) -> Constraints:
        return cls({str(c): frozenset(v for v in vs if isinstance(v, (str, int))) for c, vs in data.items()})


ANY = Constraints()
"""No constraint: every row."""


def scans_of(plan: LogicalPlan, pushdown: Mapping[str, frozenset[str]]) -> dict[str, list[Constraints]]:
    """Every scan of a table of ``pushdown`` ({table: columns}) in ``plan``, with its constraints."""
    found: dict[str, list[Constraints]] = {}
    _walk(plan, pushdown, found)
    return found


def _walk(plan: LogicalPlan, pushdown: Mapping[str, frozenset[str]], found: dict[str, list[Constraints]]) -> None:
    variant = plan.to_variant()
    kind = type(variant).__name__
    if kind == "Filter":
        inputs = plan.inputs()
        if len(inputs) == 1 and type(inputs[0].to_variant()).__name__ == "TableScan":
            # A filter right on a scan holds what the scan could not take (IN lists of
            # more than a few items, for example): it constrains that scan alone.
            _scan(inputs[0].to_variant(), [variant.predicate()], pushdown, found)
            return
    if kind == "TableScan":
        _scan(variant, [], pushdown, found)
        return
    for child in plan.inputs():
        _walk(child, pushdown, found)


def _scan(scan: Any, extra: list[Expr], pushdown: Mapping[str, frozenset[str]],
          found: dict[str, list[Constraints]]) -> None:
    table = str(scan.table_name()).split(".")[-1]
    columns = pushdown.get(table)
    if columns is None:
        return
    values: dict[str, frozenset[ScanValue]] = {}
    for expr in [*scan.filters(), *extra]:
        for conjunct in _conjuncts(expr):
            constraint = _constraint(conjunct)
            if constraint is None or constraint[0] not in columns:
                continue
            column, allowed = constraint
            values[column] = values[column] & allowed if column in values else allowed
    found.setdefault(table, []).append(Constraints(values))


def _conjuncts(expr: Expr) -> list[Expr]:
    variant = expr.to_variant()
    if type(variant).__name__ == "BinaryExpr" and variant.op().upper() == "AND":
        return [*_conjuncts(variant.left()), *_conjuncts(variant.right())]
    return [expr]


def _constraint(expr: Expr) -> tuple[str, frozenset[ScanValue]] | None:
    """``(column, values)`` when ``expr`` limits one column to a set of literals."""
    variant = expr.to_variant()
    kind = type(variant).__name__
    if kind == "InList":
        if variant.negated():
            return None
        column = _column(variant.expr())
        items = [_literal(item) for item in variant.list()]
        if column is None or any(item is None for item in items):
            return None
        return column, frozenset(item for item in items if item is not None)
    if kind != "BinaryExpr":
        return None
    op = variant.op().upper()
    if op == "OR":
        left, right = _constraint(variant.left()), _constraint(variant.right())
        if left is None or right is None or left[0] != right[0]:
            return None
        return left[0], left[1] | right[1]
    if op != "=":
        return None
    for column_side, literal_side in ((variant.left(), variant.right()), (variant.right(), variant.left())):
        column, literal = _column(column_side), _literal(literal_side)
        if column is not None and literal is not None:
            return column, frozenset({literal})
    return None


def _column(expr: Expr) -> str | None:
    variant = expr.to_variant()
    return str(variant.name()) if type(variant).__name__ == "Column" else None


def _literal(expr: Expr) -> ScanValue | None:
    if type(expr.to_variant()).__name__ != "Literal":
        return None
    value = expr.python_value()
    value = value.as_py() if hasattr(value, "as_py") else value
    if isinstance(value, bool):
        return None
    return value if isinstance(value, (str, int)) else None
