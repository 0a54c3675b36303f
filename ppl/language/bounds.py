"""Bounds of values: `ppl.minimum`, `ppl.maximum` (elementwise, of two nodes or a node and a
number) and `ppl.clip` (their composition), ops "minimum" and "maximum" of the op table."""
from __future__ import annotations

from ..errors import ModelError
from .nodes import Node, _auto_name, _check_node, _const, _make, _number, _widest


def minimum(a, b, name: str | None = None) -> Node:
    """Elementwise min(a, b) of two nodes, or of a node and a number (a width-1 node is repeated
    to the other's width). Its VJP sends the cotangent to the smaller input and, at a tie, to
    `a`; a NaN in either gives NaN (value and cotangents), never a finite number."""
    return _extremum("minimum", a, b, name)


def maximum(a, b, name: str | None = None) -> Node:
    """Elementwise max(a, b): as `minimum`, the cotangent to the larger input (to `a` at a tie)."""
    return _extremum("maximum", a, b, name)


def clip(x: Node, lo, hi, name: str | None = None) -> Node:
    """x clipped to [lo, hi] elementwise (numbers or nodes): minimum(maximum(x, lo), hi), so the
    cotangent passes where lo <= x <= hi (the bounds included) and is 0 outside; a NaN stays NaN."""
    _check_node(x, "x", "clip")
    if not isinstance(lo, Node) and not isinstance(hi, Node) and _number(lo, "clip: lo") > _number(hi, "clip: hi"):
        raise ModelError(f"clip of '{x.name}': lo = {lo} is above hi = {hi}; give lo <= hi")
    return minimum(maximum(x, lo), hi, name=name)


def _extremum(kind: str, a, b, name) -> Node:
    if not isinstance(a, Node) and not isinstance(b, Node):
        raise ModelError(f"ppl.{kind}: give at least one node (got {type(a).__name__} and {type(b).__name__}); "
                         f"for two numbers use Python's {kind[:3]}()")
    node = a if isinstance(a, Node) else b
    a, b = (v if isinstance(v, Node) else _const(node.model, _number(v, f"ppl.{kind} with '{node.name}': the number"),
                                                  node.width, kind) for v in (a, b))
    a, b = _widest(a, b)
    if a.width != b.width:
        raise ModelError(f"ppl.{kind} of '{a.name}' (width {a.width}) and '{b.name}' (width {b.width}): widths must "
                         f"agree (or one be 1)")
    return _make(a.model, kind, name if name is not None else _auto_name(a.model, kind), (a, b), a.width,
                 sign=1.0 if kind == "minimum" else -1.0)
