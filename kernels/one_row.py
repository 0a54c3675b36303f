"""Which cells kernels compute the same over their arrays laid out as one row (pass "narrow cells").

A cells kernel (kernels/declare.py) runs its body once per (r, j) cell of its loop's array. Where
the body reads and writes each array at its own cell only, an (R, 1) array passed as (1, R)
(`rows.as_row(x)`, a view) gives every cell the same arithmetic, in the kernel's one
inner loop over the cells, which LLVM vectorises as it does the one-column twin's loop over the
rows (`declare.narrow`). So a CPU step that calls the kernel over wide buffers calls it there too
(ppl/lowering/ir.py, `narrow_cells`), and no twin is compiled beside it: the kernel's one compiled
body serves a scalar node's buffers and a wide node's. A step that calls it over one column only
keeps the twin, which compiles and runs a little faster there.
"""
import ast

from .source import body_tree


def one_row(kernel):
    """(its array arguments, the arguments its body does not read) for a cells kernel that reads
    and writes each array at its own cell only: its body subscripts them as `x[r, j]`, tests a
    skippable one by `x.shape[0] != 0` (or `== 0`) and uses `r` and `j` nowhere else. Called on
    those arrays laid out as one row, it computes the same values. None for any other kernel (a
    rows kernel; a body that reads another cell, a width, or a row's index)."""
    d = kernel.__declared__
    if d.shape != "cells":
        return None
    if getattr(d, "one_row", False) is False:
        found = _one_row(body_tree(d.body), d.lead, d.args)
        d.one_row = found if found is not None and d.over in found[0] else None
    return d.one_row


def _one_row(fdef, lead, args):
    """one_row's reading of the body's syntax tree `fdef` (lead: its index names r and j)."""
    r, j = lead
    cell, tested, seen = set(), set(), []
    for node in ast.walk(fdef):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                isinstance(node.slice, ast.Tuple) and [getattr(e, "id", None) for e in node.slice.elts] == [r, j]:
            cell.add(node.value.id)
            seen += [id(node.value), *map(id, node.slice.elts)]
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.NotEq)) \
                and isinstance(node.comparators[0], ast.Constant) and node.comparators[0].value == 0 and \
                _rows_of(node.left) is not None:
            tested.add(_rows_of(node.left).id)
            seen.append(id(_rows_of(node.left)))
    names = [n for n in ast.walk(fdef) if isinstance(n, ast.Name)]
    arrays = cell | tested
    if not cell or not arrays <= set(args) or \
            any(n.id in (r, j, *arrays) and id(n) not in seen for n in names) or \
            any(isinstance(n, (ast.Return, ast.Yield, ast.Global, ast.Nonlocal)) for n in ast.walk(fdef)):
        return None
    used = {n.id for n in names}
    return tuple(a for a in args if a in arrays), tuple(a for a in args if a not in used)


def _rows_of(node):
    """The Name x where node is `x.shape[0]`, else None."""
    if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == 0
            and isinstance(node.value, ast.Attribute) and node.value.attr == "shape"
            and isinstance(node.value.value, ast.Name)):
        return node.value.value
    return None
