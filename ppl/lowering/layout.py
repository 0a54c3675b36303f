"""Where everything of a program lives (Layout), generated names, and the arithmetic of row
layouts: a layout maps each of a data row's K S rows to the row holding a node's value."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class PerStep(NamedTuple):
    """A loop's per-step buffer in a Layout: `steps` times the rows `rows` ('R', 'Dn' or a number),
    each step's rows one after the other."""
    rows: object
    steps: int


@dataclass
class Layout:
    """Where everything of a program lives; the Program allocates from it."""

    params: list = field(default_factory=list)   # (name, offset, shape, init ndarray)
    n_theta: int = 0
    state: list = field(default_factory=list)    # (name, offset, size, init)
    n_state: int = 0
    ws2: list = field(default_factory=list)      # (name, rows, width): rows 'R', 'D' (data rows), 'Dn' (n per data row), an int or PerStep
    ws1: list = field(default_factory=list)      # (name, rows) of 1D buffers
    inputs: list = field(default_factory=list)   # input node names, in argument order
    costs: list = field(default_factory=list)    # (cost name, ws1 index of its per-row values)
    noise: list = field(default_factory=list)    # ws2 indices of the base noise buffers (one draw per drawn row)
    consts: dict = field(default_factory=dict)   # ws1 index -> the constant values it holds (row maps)
    values: dict = field(default_factory=dict)   # node name -> ('ws2' | 'input', index, its layout: lowering.rows.RowPlan.lay)
    rw_index: int = 0
    S: int = 1
    lowering: str = "array kernels"


def _ident(name: str) -> str:
    return name.replace(".", "_")


def _canon(keys: list) -> tuple:
    """Row classes from each row's key: the index of the key's first row among the distinct keys."""
    first = {}
    return tuple(first.setdefault(k, len(first)) for k in keys)


def _ndist(P: tuple) -> int:
    """Rows per data row of layout P."""
    return max(P) + 1


def _rowmap(P: tuple, Q: tuple) -> tuple:
    """For each row of layout P, the row of layout Q holding its value (P refines Q's classes
    where the value is defined): Q of the first of the data row's rows in P's class."""
    first = {}
    for r, c in enumerate(P):
        first.setdefault(c, r)
    return tuple(Q[first[c]] for c in range(_ndist(P)))
