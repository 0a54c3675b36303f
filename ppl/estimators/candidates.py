"""Every candidate estimator of a discrete node side by side in one step, the one in force chosen
at run time: the program the measured choice compiles (ppl/compiler/autotune.py), written on the
public estimator protocol.

`candidates` holds, for one node, the unbiased estimators that can share one drawn row (`among`),
each with its options. Its rows are the drawn row and, after it, each member's extra rows (its
branches: an antithetic partner, measure-valued branches), one slot after another in the node's
digit, as the nodes of a shared digit add theirs (kernels/families/branches.py): so the graph
below runs once, on every member's rows, from the same draws (common random numbers).

- Draw. The first member with branch rows (the first member else) draws the node's values; each
  other member draws into a buffer of its own, whose rows of its slot are copied into the values
  (`copy_slot_rows`). A member whose draw is the law's ordinary draw without reading its noise
  (the score function's) draws nothing: any draw of the law serves its estimate. The members
  share their noise buffers by kind, in the order they ask: a member whose drawn row is the same
  function of the same uniforms as the first one's (DisARM's pair, mvd's branches: u < p) reads
  the same drawn row; one whose drawn row is its own (ARMS's coupled draws) is told apart by the
  measurement, which compares each member's drawn rows with the values (`check_drawn_rows`).
- Estimate. Each member estimates into gradient buffers of its own (zeroed first, then
  ctx.param_grads()'s shape); the one in force, state `candidates.<node>.chosen`, adds its
  buffers into the node's parameter cotangents (`add_chosen`). Changing the choice is a number in
  the program's state: nothing is compiled again.
- State. Each member's state and parameters keep the names they have in a program of their own
  (the score function's running mean is `baseline.<node>.mean` in both), and every member's state
  runs every step, so a measured program's warmed state carries over to the program of the choice.

A member sees the node's context through `_Member`: its own slot (Rows.offset; the slot is
always read as a shared digit's, whose extra rows weigh 0: the node's own digit has its extra rows'
weights zeroed by `candidates`), its own workspaces and gradient buffers, and the shared noise.
"""
from __future__ import annotations

import dataclasses
import weakref

from ..calls import KERNELS
from ..kernels.cpu.core import add_chosen, branch_weights, copy_slot_rows, drawn_rows_differ
from .protocol import NO_GRAD, REGISTRY, Estimator, register


def why_not_member(est, info) -> str | None:
    """Why estimator `est` cannot be a member of a node's `candidates`, else None."""
    if not est.unbiased:
        return "biased"
    why = est.applies(info)
    if why is not None:
        return why
    if est.evaluates_below:
        return "its extra rows evaluate the graph below again with other values (a program of its own)"
    if est.alternative_row:
        return "its alternative row is one row every such node shares (a program of its own)"
    if est.weights_configurations:
        return "its rows carry the configurations' probabilities (a program of its own)"
    if est.passes_value_grad or not est.hard_forward:
        return "it reads the cotangent of the node's value (a program of its own)"
    if est.kernels.get(info.dist.kind):
        return "it calls kernels of its own for this law (a program of its own)"
    if not est.branch_rows and est.expansion(info, dict(est.options)) != 1:
        return "its rows multiply the drawn row (a program of its own)"
    return None


def _members(options) -> list:
    """[(estimator, its options)] of a `candidates` node's `among`."""
    return [(REGISTRY[name], dict(opts)) for name, opts in options["among"]]


def _extra(est, info, opts) -> int:
    """The extra rows a member adds after the drawn row."""
    return est.expansion(info, opts) - 1 if est.branch_rows else 0


class _Member:
    """The context member `est` of a `candidates` node sees: the node's (ctx's public members), with
    its own slot, workspaces, gradient buffers and the noise the members share."""

    def __init__(self, ctx, k: int, est, options: dict, offset: int, shared_noise: dict, primary: bool):
        self._ctx, self.k, self.estimator, self.options = ctx, k, est, options
        self.node, self.law = ctx.node, ctx.law
        self._offset, self._noise_of, self.primary = offset, shared_noise, primary
        self._asked = {}          # (kind, width) -> how many this member asked for
        self._drawn = []          # the noise its draw read
        self._drawing = False
        self._grads = None
        self.drew = False         # whether its draw wrote a buffer of its own (draw_buffer)

    # ----- the rows: the member's slot in the node's digit (every extra row weighs 0)
    @property
    def rows(self):
        return dataclasses.replace(self._ctx.rows, offset=self._offset, shared=True)

    # ----- the node's buffers
    def value(self, node=None):
        if node is None and self._drawing and not self.primary:
            self.drew = True
            return self.draw_buffer()
        return self._ctx.value(node)

    def draw_buffer(self):
        """The buffer a member other than the first draws into."""
        return self._ctx.buffer(f"cand{self.k}v", width=self.node.width)

    def cotangent(self):
        return NO_GRAD

    def params(self):
        return self._ctx.params()

    def param_grads(self):
        if self._grads is None:
            self._grads = [g if g is NO_GRAD else self._ctx.buffer(f"cand{self.k}g{i}", width=self._width(i))
                           for i, g in enumerate(self._ctx.param_grads())]
        return self._grads

    def _width(self, i):
        return self.node.inputs[i].width

    def data_inputs(self):
        return self._ctx.data_inputs()

    def downstream_cost(self):
        return self._ctx.downstream_cost()

    def learning_signal(self):
        return self._ctx.learning_signal()

    def cost_seeds(self, head=None):
        return self._ctx.cost_seeds(head)

    def below(self):
        return self._ctx.below()

    # ----- noise, shared by kind in the order asked; workspaces of its own
    def noise(self, kind="uniform", width=None):
        key = (kind, width)
        n = self._asked.get(key, 0)
        self._asked[key] = n + 1
        if (key, n) not in self._noise_of:
            self._noise_of[key, n] = self._ctx.noise(kind, width)
        buf = self._noise_of[key, n]
        if self._drawing:
            self._drawn.append(buf)
        return buf

    def drawn_noise(self):
        if not self._drawn:
            return None
        return self._drawn[0] if len(self._drawn) == 1 else tuple(self._drawn)

    def buffer(self, tag, width=None, shared=False):
        return self._ctx.buffer(tag if shared else f"c{self.k}{tag}", width, shared)

    def parameter(self, tag, shape, init=0.0, name=None):
        return self._ctx.parameter(tag, shape, init, name or f"{self.estimator.name}.{self.node.name}.{tag}")

    def state(self, tag, init=0.0, size=None, name=None):
        return self._ctx.state(tag, init, size, name or f"{self.estimator.name}.{self.node.name}.{tag}")

    # ----- emitting
    def call(self, kernel, *args, at_start=False, once=False):
        self._ctx.call(kernel, *args, at_start=at_start, once=once)

    def law_call(self, key, ins, outs):
        self._ctx.law_call(key, ins, outs)   # a member calls the law's own kernels (why_not_member)

    def emit(self, line, at_start=False, once=False):
        self._ctx.emit(line, at_start, once)

    def sample(self, reads_noise=True):
        """The law's ordinary draw; a member that never reads its noise draws nothing (the first
        member's draw serves its estimate)."""
        if not (reads_noise or self.primary):
            return None
        law = self.law
        noise = self.noise(law.noise, None if law.noise_draws == 1 else law.noise_draws * self.node.width)
        self.law_call("sample", [*self.params(), noise], [self.value()])
        return noise

    def log_prob_vjp(self, weights, value_grad=NO_GRAD):
        """param_grads() += weights * d log p / d params (the law's VJP into the member's buffers)."""
        if any(g is not NO_GRAD for g in self.param_grads()):
            self.law_call("log_prob_bwd", [*self.params(), self.value()], [weights, *self.param_grads(), value_grad])

    def log_prob_kept(self):
        return NO_GRAD


@register
class Candidates(Estimator):
    name = "candidates"
    about = ("every unbiased estimator that shares the drawn row, side by side, the one in force chosen at run "
             "time (what the measured choice compiles)")
    cite = "ppl's measured choice (docs/ARCHITECTURE.md)"
    branch_rows = True
    suggested = False
    options = {"among": (), "chosen": 0}

    def __init__(self):
        self._members_of = weakref.WeakKeyDictionary()   # a node's context -> its members' contexts

    def check(self, info):
        if not info.dist.discrete:
            return f"{info.dist.name} is continuous (its candidates read the value's cotangent)"
        return None

    def not_measured(self, info):
        return "it is the measurement's own program"

    def resolve(self, info, opts):
        among = []
        for spec in opts["among"] or [n for n in sorted(REGISTRY) if n != self.name]:
            name, o = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
            est = REGISTRY.get(name)
            if est is None:
                raise ValueError(f"candidates: unknown estimator {name!r}")
            why = why_not_member(est, info)
            if why is None and not opts["among"] and est.param_prefixes and name != "score":
                why = "it trains parameters of its own with the model"   # not among the default members
            if why is not None:
                if opts["among"]:
                    raise ValueError(f"candidates: '{name}' cannot share the drawn row ({why})")
                continue
            o = est.resolve(info, {**est.options, **o})
            among.append((name, tuple(sorted(o.items()))))
        if not among:
            raise ValueError("candidates: no estimator can share the drawn row")
        chosen = opts["chosen"]
        if not isinstance(chosen, int) or not 0 <= chosen < len(among):
            raise ValueError(f"candidates: chosen must be an index into its {len(among)} members, got {chosen!r}")
        return {**opts, "among": tuple(among)}

    def expansion(self, info, opts):
        return 1 + sum(_extra(est, info, o) for est, o in _members(opts))

    def scalar_support(self, node, opts):
        return "its members are measured in array form"

    def members(self, ctx) -> list:
        """The members' contexts of the node of `ctx` (made once per node)."""
        if ctx not in self._members_of:
            info = _Info(ctx.node, ctx.law)
            members, noise = _members(ctx.options), {}
            first = next((k for k, (est, _) in enumerate(members) if est.branch_rows), 0)
            off = ctx.rows.slot[1]
            out = []
            for k, (est, o) in enumerate(members):
                out.append(_Member(ctx, k, est, o, off, noise, k == first))
                off += _extra(est, info, o)
            self._members_of[ctx] = out
        return self._members_of[ctx]

    def draw(self, ctx):
        members = self.members(ctx)
        stride, _, span = ctx.rows.slot
        for m in sorted(members, key=lambda m: not m.primary):   # the first member's draw, then the others'
            m._drawing = True
            m.estimator.draw(m)
            m._drawing = False
        for m in members:
            if not m.drew:
                continue
            ctx.call(drawn_rows_differ, m.draw_buffer(), ctx.value(), stride, span, ctx.buffer(differs_buffer(m.k)))
            extra = _extra(m.estimator, _Info(ctx.node, ctx.law), m.options)
            if extra:
                off = m.rows.slot[1]
                ctx.call(copy_slot_rows, m.draw_buffer(), stride, off, off + extra, span, ctx.value())
        if not ctx.rows.shared:   # a digit of its own: only the drawn row weighs
            ctx.call(branch_weights, ctx.rows.weights, stride, span)

    def estimate(self, ctx):
        grads = ctx.param_grads()
        if all(g is NO_GRAD for g in grads):
            return
        chosen = ctx.state("chosen", float(ctx.options["chosen"]), name=chosen_state(ctx.node.name))
        for m in self.members(ctx):
            for g in m.param_grads():
                if g is not NO_GRAD:
                    ctx.call(KERNELS.rows.zero2, g)
            m.estimator.estimate(m)
            for g, mine in zip(grads, m.param_grads()):
                if g is not NO_GRAD:
                    ctx.call(add_chosen, chosen, m.k, mine, g)


def differs_buffer(k: int) -> str:
    """The tag of member k's buffer marking the drawn rows where its draw is not the values'
    (`<tag>_<node>`, one value per row)."""
    return f"cand{k}d"


def chosen_state(node: str) -> str:
    """The name of the state holding the member in force at a `candidates` node."""
    return f"candidates.{node}.chosen"


@dataclasses.dataclass
class _Info:
    """What a member's expansion reads of the node (NodeInfo's node and dist)."""
    node: object
    dist: object
