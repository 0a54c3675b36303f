"""Declared kernels joined into one: a run of the CUDA step's kernels over the same rows as ONE
generated kernel, each row's lanes running the members' bodies one after another.

A declared kernel of the shapes ``cells``, ``rows`` or ``groups`` (kernels/declare.py) does the
work of row r of its loop's array in iterations no other row's iteration depends on. A run of
such kernels over arrays of the same rows is one kernel where each row's lanes (a warp, a
block, or one thread: native/launch.row_lanes) run the first member's iterations of the row,
meet (``lanes_sync``), run the second's, and so on: a row body in its lanes form
(kernels/lanes.py) or, without one, on lane 0; a cells body's columns, or a groups body's
groups, strided over the lanes. What a member writes of row r, a later member reads after
the lanes met, so the members may pass values through any array they read and write at row r
only.

Whether two members may share a kernel is read from their bodies' syntax trees
(``access``): for each array argument, whether the body writes it and whether every access is at
the row (its first index the body's row index, never the array passed whole to a call). Two
members conflict on an array one of them writes where either reaches past the row (a global
node's row 0, a data row's rows, an antithetic pair's second row): such a member starts a new
kernel (``Run``). An array a body only adds to through ``add_word`` (a word many rows add to
atomically: a check's count) is ``ADDS``: members that only add to it may share a kernel.
The joined kernel checks at launch that its members' loops run over the same
number of rows, and launches them one by one where they do not (kernels/cuda/fused.py).
"""
import ast

from .math.words import ADDING
from .source import body_tree

ADDS = "adds"   # `at the row` of an array a body only adds to through ADDING's calls (words rows add to)
SHAPES = ("cells", "rows", "groups")   # the loop shapes a joined kernel runs (not items: no rows)
_TYPE_ONLY = ("like", "hyper", "len")   # calls that read an array's type or length, not its items
# where a name is the value itself (not a number in arithmetic or an index): to a call, bound
_PASSED = (ast.Call, ast.keyword, ast.Assign, ast.AnnAssign, ast.NamedExpr, ast.Tuple, ast.List, ast.Return,
           ast.Starred)


def access(body, lead) -> dict:
    """{argument name: (written, at the row)} of a declared body ``body(*lead, *args)`` for each
    argument it subscripts or passes whole: written when an item of it is assigned; at the row
    when every subscript's first index is the row index (``lead[0]``) and the array is never
    passed whole to a call or bound to another name (what a call does with it is unknown:
    written, anywhere); a part of it bound to a local and written through that local is written.
    A name in arithmetic or an index is a number, not an array."""
    py = getattr(body, "py_func", body)
    fn = body_tree(py)
    params = [a.arg for a in fn.args.args]
    row, args = params[0], set(params[len(lead):])
    moved = any(isinstance(n, ast.Name) and n.id == row and isinstance(n.ctx, ast.Store) for n in ast.walk(fn))
    parent = {}
    for node in ast.walk(fn):
        for child in ast.iter_child_nodes(node):
            parent[child] = node
    # a local bound to part of an argument (`v = out[r]`) that is written through (`v[j] = ...`):
    # the argument is written where the binding reads it
    bound = {n.targets[0].id: n.value for n in ast.walk(fn)
             if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
             and isinstance(n.value, ast.Subscript) and isinstance(n.value.value, ast.Name)
             and n.value.value.id in args}
    through = {bound[n.value.id] for n in ast.walk(fn) if isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store)
               and isinstance(n.value, ast.Name) and n.value.id in bound}
    out = {}
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Name) and node.id in args and isinstance(node.ctx, ast.Load)):
            continue
        up = parent.get(node)
        if isinstance(up, ast.Attribute) or (isinstance(up, ast.Call) and isinstance(up.func, ast.Name)
                                             and up.func.id in _TYPE_ONLY):   # x.shape, like(x, 0.0)
            continue
        was = out.get(node.id)
        if isinstance(up, ast.Subscript) and up.value is node:
            first = up.slice.elts[0] if isinstance(up.slice, ast.Tuple) else up.slice
            here = not moved and isinstance(first, ast.Name) and first.id == row
            out[node.id] = merged(was, isinstance(up.ctx, ast.Store) or up in through, here)
        elif isinstance(up, ast.Call) and isinstance(up.func, ast.Name) and up.func.id in ADDING:
            if up.args and up.args[0] is node:   # add_word(x, k, v): x only added to; k and v are numbers
                out[node.id] = merged(was, True, ADDS)
        elif isinstance(up, _PASSED):   # passed whole (to a call, or bound to another name)
            out[node.id] = merged(was, True, False)
    return out


def merged(was, written, at_row):
    """One array's (written, at the row or ADDS) after one more access to it (`was`: before it,
    None for none): ADDS while every access only adds to it, written and past the row once an
    add meets any other access."""
    if was is None:
        return written, at_row
    if at_row is ADDS or was[1] is ADDS:
        return True, ADDS if at_row is ADDS and was[1] is ADDS else False
    return was[0] or written, was[1] and at_row


class Run:
    """The members of one joined kernel, member by member: ``fits(touched)`` says whether a
    member touching these arrays (``{key: (written, at the row or ADDS)}``, keys naming the memory: two
    arguments of the same key are one array) may join; ``add`` records it."""

    def __init__(self):
        self.arrays = {}   # key -> [written by a member, reached past the row by a member, only added to]

    def fits(self, touched: dict) -> bool:
        for key, (written, at_row) in touched.items():
            had = self.arrays.get(key)
            if had is None:
                continue
            if at_row is ADDS or had[2]:   # adds commute with adds, with nothing else
                if not (at_row is ADDS and had[2]):
                    return False
            elif (had[0] or written) and (had[1] or not at_row):
                return False
        return True

    def add(self, touched: dict) -> None:
        for key, (written, at_row) in touched.items():
            had = self.arrays.setdefault(key, [False, False, at_row is ADDS])
            had[0] |= written
            had[1] |= at_row is ADDS or not at_row
            had[2] &= at_row is ADDS


def _member_lines(k, shape, formed, args, over, K, indent) -> list:
    """The lines of member k's work of row r on lane_ of W_ (its body the global ``f<k>``): `args`
    its arguments' text, `over` its loop array's, `K` its group size's (groups)."""
    if shape == "rows" and formed:
        lines = [f"f{k}(r, lane_, W_, {args})"]
    elif shape == "rows":
        lines = ["if lane_ == 0:", f"    f{k}(r, {args})"]
    elif shape == "cells":
        lines = [f"for j in range(lane_, {over}.shape[1], W_):", f"    f{k}(r, j, {args})"]
    elif shape == "groups":
        lines = [f"for g in range(lane_, {over}.shape[1] // {K}, W_):", f"    f{k}(r, g, {args})"]
    else:
        raise ValueError(f"fusion: a {shape!r} kernel has no rows to join")
    return [indent + line for line in lines]


def row_source(members, n=None) -> str:
    """The source of ``seg(r, lane_, W_, a0, a1, ...)``: row r's work of every member on its W_
    lanes, in order, the lanes meeting between members. ``members``: (shape, lanes form or not,
    the positions of the member's arguments among a0, a1, ..., its loop array's position, its
    group size's position or None); member k's body is the global ``f<k>`` (a rows body in its
    lanes form ``f(r, lane_, W_, *args)`` where it has one, else ``f(r, *args)``; cells
    ``f(r, j, *args)``; groups ``f(r, g, *args)``), ``lanes_sync`` the lanes' meeting. ``n``: the
    a's it takes (default: through the members' last position; more where the kernel passes
    arguments of its own beside them, a side member's)."""
    n = max(1 + max((p for m in members for p in m[2]), default=-1), n or 0)
    lines = [f"def seg(r, lane_, W_{''.join(f', a{i}' for i in range(n))}):"]
    for k, (shape, formed, pos, over, K) in enumerate(members):
        if k:
            lines.append("    lanes_sync(W_)")
        lines += _member_lines(k, shape, formed, ", ".join(f"a{p}" for p in pos), f"a{over}",
                               None if K is None else f"a{K}", "    ")
    return "\n".join(lines) + "\n"


def step_view(storage, shift, length) -> str:
    """The rows of step it_ + shift of a loop's storage (its name: a parameter of the kernel;
    `length` steps of rows)."""
    at = "it_" if shift == 0 else f"(it_ {'+' if shift > 0 else '-'} {abs(shift)})"
    return f"{storage}[{at} * ({storage}.shape[0] // {length}):({at} + 1) * ({storage}.shape[0] // {length})]"


def host_source(length, n, scratch, views, exprs: dict) -> str:
    """The source of a loop block's host part: for each (name, text) of `exprs` (a member's
    arguments or test, a fold's arguments: text over the kernel's parameters a<k>, its scratch
    c<i>, the views and it_) a function ``name(args, it_)`` of the launch's arguments (a0 ..
    a<n-1>, then the `scratch` storages) at step it_, its views made from their storages."""
    at = {name: (storage, step_view(storage, shift, length)) for name, storage, shift in views}
    index = {**{f"a{i}": i for i in range(n)}, **{f"c{i}": n + i for i in range(scratch)}}
    lines = []
    for fname, text in exprs.items():
        used = dict.fromkeys(words(text))
        params = dict.fromkeys(at[w][0] if w in at else w for w in used)   # a view reads its storage
        lines.append(f"def {fname}(args, it_):")
        lines += [f"    {w} = args[{index[w]}]" for w in params if w in index]
        lines += [f"    {w} = {at[w][1]}" for w in used if w in at]
        lines.append(f"    return {text}")
    return "\n".join(lines) + "\n"


def words(text: str) -> list:
    """The identifiers of an expression's text, in order."""
    out, word = [], ""
    for ch in text + " ":
        if ch.isalnum() or ch == "_":
            word += ch
        else:
            if word and not word[0].isdigit():
                out.append(word)
            word = ""
    return out


def steps_source(length, reverse, views, members, n, scratch=0) -> str:
    """The source of ``seg(r, lane_, W_, a0, ..., a<n-1>, c0, ..., c<scratch-1>)``: row r's work of
    every step of a loop (``it_`` over range(length), from the last step down when reverse), each
    step's members in order, the lanes meeting before each. The c's are the kernel's own scratch
    storages. ``views``: (name, storage, shift), a name bound at each step to a storage's rows of
    step it_ + shift (`step_view`); ``members``: (shape, lanes form or not, the text of its
    arguments, the index among them of its loop array and of its group size (or None), the
    step's test or "") where a text is an expression of the parameters, the views and it_; a
    member with a test runs at the steps that pass it."""
    rng = f"range({length} - 1, -1, -1)" if reverse else f"range({length})"
    params = "".join([f", a{i}" for i in range(n)] + [f", c{i}" for i in range(scratch)])
    lines = [f"def seg(r, lane_, W_{params}):", f"    for it_ in {rng}:"]
    at = {name: step_view(storage, shift, length) for name, storage, shift in views}
    for k, (shape, formed, args, over, K, test) in enumerate(members):
        indent = "        "
        if test:
            lines.append(f"{indent}if {test}:")
            indent += "    "
        lines.append(f"{indent}lanes_sync(W_)")
        used = dict.fromkeys(w for a in args for w in words(a) if w in at)
        lines += [f"{indent}{w} = {at[w]}" for w in used]   # a member's views made where it runs: short-lived
        names = [f"m{k}_{i}" for i in range(len(args))]
        lines += [f"{indent}{name} = {arg}" for name, arg in zip(names, args)]
        lines += _member_lines(k, shape, formed, ", ".join(names), names[over],
                               None if K is None else names[K], indent)
    return "\n".join(lines) + "\n"
