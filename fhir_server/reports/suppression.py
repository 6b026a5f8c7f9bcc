"""Complementary (secondary) small-cell suppression of published tables (issue 14).

Primary suppression withholds counts below the minimum; but every published table also publishes its
totals (the MeasureReport's population, the margins of a two-way table), so one withheld cell in a row
or column is recovered by subtraction. Following the hypercube / line rule of the Eurostat *Handbook on
Statistical Disclosure Control* (Hundepool et al., 2010, §4.3–4.4, as implemented by τ-ARGUS), every
line of the table (the cells sharing all groupings but one, whose sum is published) that holds exactly
one withheld cell gets a second one: the smallest published non-zero cell of that line. Repeated until
no line changes, then audited the way τ-ARGUS audits a pattern: a withheld cell is still disclosed when
it is a linear combination of the published line totals (a "bridge" between two blocks of withheld
cells); such a cell gets another partner, until no withheld value follows from the totals.

Absent rows are published zeros (a stratum with no visit is known to be 0), so they never serve as
partners. The audit is a bridge search for two-way tables and exact rational elimination beyond.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

_MAX_AUDIT_CELLS = 5000  # beyond this the exact audit is skipped (the line rule still applies)


def count_field(rows: list[dict]) -> str:
    """The additive column of a table: the denominator of an average, else the value."""
    return "denominator" if rows and "denominator" in rows[0] else "value"


def _lines(rows: list[dict], dims: list[str]) -> list[list[int]]:
    """Row indexes of every line: one per axis and per combination of the other groupings."""
    if len(dims) <= 1:
        return [list(range(len(rows)))] if rows else []
    out = []
    for axis in range(len(dims)):
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            groups[tuple(r[d] for j, d in enumerate(dims) if j != axis)].append(i)
        out.extend(groups.values())
    return out


def _withhold(row: dict, field: str) -> None:
    row[field] = None
    if field == "denominator":
        row["value"] = None  # the average of a withheld count is withheld too


def _partner(rows: list[dict], line: list[int], field: str) -> int | None:
    published = [i for i in line if rows[i][field] is not None and rows[i][field] > 0]
    return min(published, key=lambda i: rows[i][field]) if published else None


def _bridges(rows: list[dict], dims: list[str], hidden: list[int]) -> list[int]:
    """Two-way tables: a withheld cell is determined exactly when it lies on no cycle of withheld cells
    (row – column – row …) — a bridge of that bipartite graph (the null space of the margin equations
    is its cycle space). Tarjan's bridge search, iterative."""
    adj: dict[tuple, list[tuple[tuple, int]]] = defaultdict(list)
    for i in hidden:
        a, b = ("r", rows[i][dims[0]]), ("c", rows[i][dims[1]])
        adj[a].append((b, i))
        adj[b].append((a, i))
    order: dict[tuple, int] = {}
    low: dict[tuple, int] = {}
    out = []
    for root in adj:
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack = [(root, -1, iter(adj[root]))]
        while stack:
            node, via, edges = stack[-1]
            step = next(edges, None)
            if step is None:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > order[parent]:
                        out.append(via)
                continue
            nxt, edge = step
            if edge == via:
                continue
            if nxt in order:
                low[node] = min(low[node], order[nxt])
            else:
                order[nxt] = low[nxt] = len(order)
                stack.append((nxt, edge, iter(adj[nxt])))
    return out


def disclosed(rows: list[dict], dims: list[str], field: str = "value") -> list[int]:
    """Withheld cells whose value follows from the published line totals (exact linear algebra)."""
    hidden = [i for i, r in enumerate(rows) if r[field] is None]
    if not hidden:
        return []
    if len(dims) == 2:
        return _bridges(rows, dims, hidden)
    return _linear(rows, dims, hidden)


def _linear(rows: list[dict], dims: list[str], hidden: list[int]) -> list[int]:
    """Withheld cells in the row space of the line equations (any number of groupings)."""
    col = {i: k for k, i in enumerate(hidden)}
    matrix: list[list[Fraction]] = []
    for line in _lines(rows, dims):
        members = [col[i] for i in line if i in col]
        if members:
            vec = [Fraction(0)] * len(hidden)
            for k in members:
                vec[k] = Fraction(1)
            matrix.append(vec)
    pivots = _rref(matrix, len(hidden))
    # e_k lies in the row space of a reduced matrix iff k is a pivot whose row has no other entry.
    return [hidden[k] for k, r in pivots.items() if all(v == 0 for j, v in enumerate(matrix[r]) if j != k)]


def _rref(matrix: list[list[Fraction]], width: int) -> dict[int, int]:
    """Reduce in place; {pivot column: row}."""
    pivots: dict[int, int] = {}
    row = 0
    for c in range(width):
        pick = next((r for r in range(row, len(matrix)) if matrix[r][c] != 0), None)
        if pick is None:
            continue
        matrix[row], matrix[pick] = matrix[pick], matrix[row]
        lead = matrix[row][c]
        matrix[row] = [v / lead for v in matrix[row]]
        for r in range(len(matrix)):
            if r != row and matrix[r][c] != 0:
                f = matrix[r][c]
                matrix[r] = [a - f * b for a, b in zip(matrix[r], matrix[row])]
        pivots[c] = row
        row += 1
    return pivots


def complement(rows: list[dict], dims: list[str]) -> list[dict]:
    """The rows with complementary suppression applied (a new list; primary suppression already done)."""
    if not dims or not rows:
        return rows
    field = count_field(rows)
    out = [dict(r) for r in rows]
    if all(r[field] is not None for r in out):
        return out
    lines = _lines(out, dims)
    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(1 for i in line if out[i][field] is None) == 1:
                partner = _partner(out, line, field)
                if partner is not None:
                    _withhold(out[partner], field)
                    changed = True
    if len(dims) > 1 and len(out) <= _MAX_AUDIT_CELLS:
        while True:
            found = disclosed(out, dims, field)
            through = [line for i in found for line in lines if i in line]
            partner = next((p for line in through if (p := _partner(out, line, field)) is not None), None)
            if partner is None:
                break
            _withhold(out[partner], field)
    return out
