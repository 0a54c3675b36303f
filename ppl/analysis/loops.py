"""The analysis of a model's loops (`ppl.scan`, ppl/language/scan.py).

A loop's body is one step of the graph: its nodes read the carry's placeholders (kind "carry")
and the step's x (kind "scan_x"), and nothing outside reads them but the loop's outputs (kind
"scan_last": the carry after the last step; "scan_stack": the per-step outputs side by side).
The graph (graph.py) holds one step; what crosses steps is described here:

- the order (language/scan.py's `loop_order`, which graph.py applies): the nodes the body does not
  depend on, the body (contiguous: the lowering prints it as one loop block), then the rest;
- a body node's downstream costs at its own step (the body's costs it reaches), and whether it
  reaches the carry or an output (`future`): then every cost the carry reaches at the later steps
  and every cost after the loop is downstream of it too. The lowering accumulates those as the
  backward pass runs the steps in reverse (one running sum, `LoopInfo.carry_costs` and
  `post_costs`); taking all of them, not only those the node's own carry component reaches, adds
  costs the node cannot influence, which keeps a score-function estimate unbiased;
- a gradient-free black box the carry reaches at the next step breaks the paths of the nodes that
  reach the carry (`blocked_by`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError

OUTPUT_KINDS = ("scan_last", "scan_stack")


@dataclass(frozen=True)
class LoopInfo:
    loop: object                # language.scan.Loop
    body: frozenset             # its nodes
    future: frozenset           # the body's nodes that reach the carry or an output
    carry_costs: tuple          # the body's costs the carry reaches within a step
    post_costs: tuple           # the costs after the loop its outputs reach


def loops_of(model) -> list:
    return list(getattr(model, "loops", ()))


def check_reads(model):
    """Nothing outside a loop's body reads the body's nodes but the loop's outputs."""
    body = {n.name: n.attrs["loop"] for n in model.order if "loop" in n.attrs}
    for n in model.order:
        if "loop" in n.attrs:
            continue
        for i in n.inputs:
            if i.name in body and not (n.kind in OUTPUT_KINDS and n.attrs.get("of_loop") == body[i.name]):
                raise ModelError(f"'{n.name}' reads '{i.name}', a node of the body of ppl.scan '{body[i.name]}', from "
                                 f"outside the loop; a step's values leave the loop as its carry or its outputs "
                                 f"(return them from f: (carry, y))")


def analyse(model, order, costs, descendants) -> list:
    """LoopInfo per loop; `descendants(name)`: the names below a node in the graph (one step)."""
    infos = []
    for lp in loops_of(model):
        body = frozenset(lp.body)
        outs = {o.name for o in (*lp.carry_out, *lp.ys)}
        future = frozenset(n for n in lp.body if n.name in outs or outs & descendants(n.name))
        reach = set()
        for c in lp.carry:
            reach |= descendants(c.name)
        carry_costs = tuple(c for c in costs if c in body and c.name in reach)
        after = set()
        for o in (*lp.last, *lp.stacked):
            after |= descendants(o.name)
        post_costs = tuple(c for c in costs if c not in body and c.name in after)
        infos.append(LoopInfo(lp, body, future, carry_costs, post_costs))
    return infos


def carry_continues(model, name: str) -> tuple:
    """The names a path reaching `name` goes on to at the next step: the loop's carry placeholders
    when `name` is a node holding the carry at the end of a step; () otherwise."""
    for lp in loops_of(model):
        if any(o.name == name for o in lp.carry_out):
            return tuple(c.name for c in lp.carry)
    return ()


def info_of(infos: list, node):
    for info in infos:
        if node in info.body:
            return info
    return None


def check_length(model, n_stochastic: int):
    """The random numbers of a step of loop t are addressed by stream 16 i + k + 16 N t (N the
    model's random nodes): 32 bits must hold them."""
    for lp in loops_of(model):
        if 16 * n_stochastic * lp.length >= 1 << 32:
            raise ModelError(f"ppl.scan '{lp.name}': {lp.length} steps of a model with {n_stochastic} random nodes "
                             f"exceed the random streams' address space (16 N length < 2^32); shorten the scan or "
                             f"split it into several")
