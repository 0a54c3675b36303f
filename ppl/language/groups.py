"""Plates of groups: what m.plate(name, size, index=) declares (`Group`), and `Embed`, a learned
table's row per data row's group (an automatic guide's parameters in such a plate, or a
hand-written guide's)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError
from .nodes import Node, _auto_name, _check_node, _make, _number, _size


@dataclass(frozen=True)
class Group:
    """A plate of groups (m.plate(name, size, index=)): `size` groups, each data row's group the
    value of the input node named `index`; `parent`: the plate of groups it is nested in (each of
    its groups inside one of the parent's), or None."""
    name: str
    size: int
    index: str
    parent: str | None = None


def Embed(index: Node, num: int, width: int, name: str | None = None, init: float = 0.0) -> Node:
    """Row index[r] of a learned table of shape (num, width), the parameter '<name>' (an embedding,
    as torch's nn.Embedding: a group's parameters looked up by each data row's group). `index` is
    a data input of width 1 holding whole numbers 0 .. num - 1 (checked when data comes in)."""
    owner = f"Embed '{name or ''}'"
    _check_node(index, "index", owner)
    if index.kind != "input" or index.width != 1:
        raise ModelError(f"{owner}: index must be a data input of width 1 (m.input('group', 1)) holding each row's "
                         f"table row, got {index.kind} '{index.name}' of width {index.width}")
    num, width = _size(num, f"{owner}: num"), _size(width, f"{owner}: width")
    m = index.model
    return _make(m, "embed", name if name is not None else _auto_name(m, "embed"), (index,), width, num=num,
                 init=_number(init, f"{owner}: init"))
