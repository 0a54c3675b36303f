"""Loops: `ppl.scan(f, init, xs=None, length=None)`, JAX's and NumPyro's convention.

    with ppl.Model("walk") as m:
        theta = ppl.param("theta", 1, 0.3)
        def step(s, t):
            up = ppl.Bernoulli("up", logits=theta - 0.5 * s)
            s = s + 2.0 * up - 1.0
            m.cost("c", ppl.total(0.1 * (s * s)))   # a per-step cost: summed over the steps
            return s, up
        last, ups = ppl.scan(step, m.input("s0", 1), length=100)

`f(carry, x) -> (carry, y)`: the carry is a node or a tuple of nodes (the state a step reads and
writes back, of the same widths); `x` is the step's slice of `xs` (columns t w .. (t + 1) w of a
node of width length * w), or without `xs` the step index t as a width-1 node. `scan` returns
`(carry, ys)`: the carry after the last step and each output's steps side by side (a node of
width length * w per output; `y` may be None, a node or a tuple of nodes).

The body's nodes exist once in the graph (`attrs["loop"]`: the loop's name) and once per step in
the compiled step: the lowering prints the body as a loop (ppl/lowering/loops.py), so the step's
size and its compile time do not depend on the length. A random node made in the body is drawn
afresh at every step and a cost made there is paid at every step (the objective sums them);
`explain()` shows such a node once, as `up[0..T-1]`. Parameters (`ppl.param`) made in the body are
the same at every step; data inputs are declared outside. An op made in the body from values
outside it only (parameters, constants, inputs; not a random node, a cost head or a user's
function) is the same at every step too: it is made outside the body and computed once, before
the loop (`Loop.hoists`); a cost declared on it in the body is still paid at every step (its
head is in the body). Scans do not nest.

Memory. The backward pass reads what each step computed: kept for every step, that is O(T) per
row. `checkpoint=K` keeps K steps and the carry at the end of every K-th step; the backward pass
runs each segment's steps forward again (the same draws: a step's noise is addressed by its
index) before it runs them backward, so memory is O(T / K + K) steps per row for about one more
forward pass, and the gradient is the one of the scan that keeps every step, bit for bit. The
default (checkpoint=None) is K = ceil(sqrt(T)) when the steps would keep more than 1 MiB per data
row (segment_steps' estimate: a value, a cotangent and a noise per unit of the body), else
every step; checkpoint=False keeps every step. Outputs `y` keep every step (they are returned).
Checkpointing is the CPU target's, and refused for stochastic derivatives, whose alternative
path is carried across the steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ModelError
from ..ops import OPS
from ..validate import integer
from .nodes import Node, _auto_name, _check_node, _current, _make

MAX_LENGTH = 1 << 24
AUTO_CHECKPOINT_BYTES = 1 << 20   # a scan keeping more per data row is checkpointed by default


@dataclass(eq=False)
class Loop:
    """A scan: its length, the nodes around its body and the body's nodes."""

    name: str
    length: int
    init: tuple                 # the carry's initial values (nodes outside the body)
    xs: Node | None             # the per-step input (length * w columns), or None
    carry: tuple = ()           # placeholders (kind "carry"): the carry at the start of a step
    x: Node | None = None       # placeholder (kind "scan_x"): xs's slice of the step, or the step index
    carry_out: tuple = ()       # the body's nodes holding the carry at the end of a step
    ys: tuple = ()              # the body's per-step outputs
    last: tuple = ()            # after the loop (kind "scan_last"): the carry after the last step
    stacked: tuple = ()         # after the loop (kind "scan_stack"): each output's steps side by side
    body: list = field(default_factory=list)   # every node made in the body, in order
    checkpoint: object = None   # K: the carry kept every K steps, segments run again backward; False: never

    @staticmethod
    def hoists(kind, inputs, attrs) -> bool:
        """Whether a node made while the body is declared is made outside it, computed once before
        the loop (loop-invariant code motion): an op of the op table that is neither a cost head
        nor a user's function, whose inputs are all outside the body (parameters, inputs, constants,
        values computed before the loop or hoisted so), and not placed in the body on purpose (an
        explicit `loop`). Its value is the same at every step; its gradient sums what every step
        sends it, as any value outside the loop the body reads. A cost declared in the body on such
        a value is still paid at every step: its head (ppl.total, ...) is in the body."""
        op = OPS.get(kind)
        return op is not None and not op.head and not op.user and kind != "param" and "loop" not in attrs \
            and all("loop" not in i.attrs for i in inputs)


def _nodes(value, what: str, owner: str, allow_none=False) -> tuple | None:
    """(nodes, single): a node or a tuple / list of nodes, checked."""
    if value is None and allow_none:
        return (), None
    if isinstance(value, Node):
        return (value,), True
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, Node) for v in value):
        return tuple(value), False
    raise ModelError(f"{owner}: {what} must be a node or a non-empty tuple of nodes, got {value!r}")


def scan(f, init, xs=None, length=None, checkpoint=None):
    """Run `f(carry, x) -> (carry, y)` for `length` steps (module docstring); returns
    `(carry after the last step, ys)`. checkpoint: the steps of a segment kept for the backward
    pass (an int >= 2; None: the default rule; False: every step kept)."""
    m = _current("ppl.scan")
    owner = "ppl.scan"
    if m.loop_open is not None:
        raise ModelError(f"{owner} inside the body of the scan '{m.loop_open.name}': scans do not nest; carry the "
                         f"inner loop's state in the outer carry, or unroll the inner loop in Python")
    if not callable(f):
        raise ModelError(f"{owner}: f must be a function f(carry, x) -> (carry, y), got {type(f).__name__}")
    inits, single = _nodes(init, "init", owner)
    for i in inits:
        if i.model is not m:
            raise ModelError(f"{owner}: init '{i.name}' belongs to another model")
    if xs is not None:
        _check_node(xs, "xs", owner)
        if length is None:
            length = xs.width
    if length is None:
        raise ModelError(f"{owner}: give length= (the number of steps), or xs= (a node of length * w columns: "
                         f"the step's x is its columns t w .. (t + 1) w)")
    length = integer(length, f"{owner}: length", lo=1, hi=MAX_LENGTH)
    if checkpoint is not None and checkpoint is not False:
        checkpoint = integer(checkpoint, f"{owner}: checkpoint (the steps of a segment, 2 or more; or False)", lo=2,
                             hi=MAX_LENGTH)
    if xs is not None and xs.width % length:
        raise ModelError(f"{owner}: xs '{xs.name}' has {xs.width} columns, not a multiple of length={length}; "
                         f"each step reads xs.width // length columns")
    loop = Loop(_auto_name(m, "scan"), length, inits, xs, checkpoint=checkpoint)
    first = len(m.order)   # the body: the nodes made from here on (nodes._make marks them)
    m.loop_open = loop
    try:
        loop.carry = tuple(_make(m, "carry", f"{loop.name}_carry{k}", (i,), i.width, index=k)
                           for k, i in enumerate(inits))
        if xs is not None:
            loop.x = _make(m, "scan_x", f"{loop.name}_x", (xs,), xs.width // length, length=length)
        else:
            loop.x = _make(m, "scan_x", f"{loop.name}_t", (), 1, length=length)
        out = f(loop.carry[0] if single else loop.carry, loop.x)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ModelError(f"{owner}: f must return (carry, y), a pair; got {type(out).__name__}")
        outs, single_out = _nodes(out[0], "the carry f returns", owner)
        if single_out != single or len(outs) != len(inits):
            raise ModelError(f"{owner}: f returns a carry of {len(outs)} node(s) for an init of {len(inits)}; "
                             f"return the same structure as init")
        for k, (i, o) in enumerate(zip(inits, outs)):
            if o.width != i.width:
                raise ModelError(f"{owner}: carry {k} ('{o.name}') has width {o.width} but init '{i.name}' has "
                                 f"width {i.width}; a step must keep the carry's widths")
        ys, single_y = _nodes(out[1], "y", owner, allow_none=True)
        outs = tuple(in_body(m, loop, o) for o in outs)
        ys = tuple(in_body(m, loop, y) for y in ys)
    finally:
        m.loop_open = None
    loop.body = [n for n in m.order[first:] if n.attrs.get("loop") == loop.name]
    for n in m.order[first:]:
        if n.kind == "input":
            raise ModelError(f"input '{n.name}' is declared inside the body of ppl.scan '{loop.name}'; declare inputs "
                             f"outside the scan (pass a per-step input as xs=...)")
    loop.carry_out, loop.ys = outs, ys
    loop.last = tuple(_make(m, "scan_last", f"{loop.name}_last{k}", (o,), o.width, of_loop=loop.name)
                      for k, o in enumerate(outs))
    loop.stacked = tuple(_make(m, "scan_stack", f"{loop.name}_ys{k}", (y,), y.width * length, of_loop=loop.name,
                               length=length) for k, y in enumerate(ys))
    m.loops.append(loop)
    carry = loop.last[0] if single else loop.last
    stacked = None if single_y is None else (loop.stacked[0] if single_y else loop.stacked)
    return carry, stacked


def in_body(m, loop: Loop, node: Node) -> Node:
    """`node` where it is in the loop's body, else a copy of it made there: an output made outside
    the body (a parameter, the init, a value hoisted out, `Loop.hoists`) has one value per step."""
    if node.attrs.get("loop") == loop.name:
        return node
    return _make(m, "scale_shift", _auto_name(m, "scale_shift"), (node,), node.width, scale=1.0, shift=0.0,
                 loop=loop.name)


def segment_steps(loop: Loop, itemsize: int):
    """K, the steps of the loop's checkpointed segments, or None (every step kept): its
    `checkpoint`, or by default ceil(sqrt(length)) where its steps would keep more than
    AUTO_CHECKPOINT_BYTES per data row (estimated: a value, a cotangent and a noise of `itemsize`
    bytes per unit of the body's nodes)."""
    asked = loop.checkpoint
    if asked is False or (asked is not None and asked >= loop.length):
        return None
    if asked is not None:
        return int(asked)
    kept = 3 * sum(n.width for n in loop.body) * itemsize * loop.length
    return math.isqrt(loop.length - 1) + 1 if kept > AUTO_CHECKPOINT_BYTES else None


def loop_order(order: list, loops: list, descendants) -> list:
    """The order with each loop's body contiguous: before it, every node the body does not
    lead to; after it, those its outputs lead to."""
    for lp in loops:
        body = set(lp.body)
        after = set()
        for o in (*lp.last, *lp.stacked):
            after |= {o.name} | descendants(o.name)
        order = ([n for n in order if n not in body and n.name not in after] + [n for n in order if n in body]
                 + [n for n in order if n not in body and n.name in after])
    return order
