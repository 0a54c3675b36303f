"""A node as the expression its user wrote (`expression`): what messages show beside the name
ppl gave an internal node."""
from __future__ import annotations

import re

from .nodes import Node


def expression(node: Node, depth: int = 4) -> str:
    """The node as the expression a user wrote, over the nodes they named (inputs, parameters,
    random nodes, layers): `exp(-scan_1_carry0 / p)` for the node 'exp_1' (for error messages)."""
    if depth == 0 or not _auto_named(node) or not node.inputs:
        return repr(node.attrs["value"]) if node.kind == "const" else node.name
    a = [expression(i, depth - 1) for i in node.inputs]
    wrap = [f"({x})" if " " in x and not x.startswith(("(", "-")) else x for x in a]
    k, at = node.kind, node.attrs
    if k == "scale_shift":
        sc, sh = at.get("scale", 1.0), at.get("shift", 0.0)
        x = f"-{wrap[0]}" if sc == -1.0 else wrap[0] if sc == 1.0 else f"{sc!r} * {wrap[0]}"
        return x if sh == 0.0 else f"{x} {'-' if sh < 0 else '+'} {abs(sh)!r}"
    ops = {"add": " + ", "mul": " * ", "div": " / "}
    if k in ops and len(wrap) == 2:
        return ops[k].join(wrap)
    if k == "pow":
        return f"{wrap[0]} ** {at.get('p')!r}"
    if k in ("bcast", "copy"):
        return a[0]
    return f"{k}({', '.join(a)})"


def _auto_named(node: Node) -> bool:
    """Whether the node's name is one ppl made (`<kind>_<k>`), not the user's."""
    return re.fullmatch(rf"{re.escape(node.kind)}_\d+", node.name) is not None
