"""The estimator interface and its registry.

An estimator is small and stateless: it says whether it applies to a stochastic node, whether
it is unbiased, and emits the node's forward (sampling) and backward (what reaches the node's
parameters) code through the compiler's lowering context. Learnable state (baselines,
temperatures) is declared through the context, so it lives in the program's parameter set.

The context an estimator sees (`lw`: ppl.lowering.Lowering; `sl`: ppl.scalar_lowering's
ScalarLowering, which has all of these and the row-code helpers listed on that class):
  reading     dist(node), v(node) / g(node) (value / cotangent buffer or None),
              param_values(node), param_grads(node), noise_of[node], noise_kind[node],
              choices, an (graph analyses), enum_stride[node], samples, S, rw (row weights),
              cw (cost cotangent seeds), E1 / E2 (empty 1D / 2D buffers), zero_rows,
              kept[("log_prob", node)] (sigma(logits) a log_prob cost kept),
              log_prob_weights[node] (weights of log_prob costs to fold into its VJP),
              downstream_L(node), baseline_inputs(node), rng (parameter initialisation)
  emitting    emit(line), emit_at_start(line), call(kernel, ins, outs, node),
              log_prob_vjp(node, weights, gx)
  allocating  buf1(name), buf2(name, width), param(name, shape, init) -> (view, grad view),
              state_slot(name, size, init), state_value(name, init), noise(node, kind, k)
  recording   record_noise(node, noise, kind): the base noise a draw used;
              scratch[(estimator name, node)]: what its forward leaves for its backward
Nothing else of the lowering is written by an estimator.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import graph as G

REGISTRY: dict[str, "Estimator"] = {}


@dataclass
class NodeInfo:
    """What the compiler knows of a stochastic node when choosing its estimator."""

    node: object
    dist: object             # ppl.distributions.Distribution
    blocked_by: str | None   # a gradient-free black box on a path to its costs, or None
    samples: int             # K draws per data row
    support: int | None      # joint support size (discrete nodes)

    @property
    def differentiable(self) -> bool:
        return self.blocked_by is None


class Estimator:
    name = ""
    unbiased = True
    passes_value_grad = False  # True when the cotangent of the node's value reaches its parameters
    # True when the estimator's backward ends in the node's own log-probability VJP with per-row
    # weights: a log_prob(node) cost then adds its weights there instead of a second VJP call
    fuses_log_prob = False
    hard_forward = True        # the forward value is a hard (discrete) sample
    # True when its extra rows re-evaluate the graph below the node (REBAR's control variate):
    # it then seeds those rows' cost cotangents (seed_weights) and owns what they do to the
    # stochastic nodes below it (forward_below / backward_below)
    evaluates_below = False
    options: dict = {}         # option name -> default

    def check(self, info: NodeInfo) -> str | None:
        """None when the estimator applies to the node, else the reason it does not."""
        return None

    def resolve(self, info: NodeInfo, opts: dict) -> dict:
        """The options with their defaults that depend on the node made concrete (the score
        estimator's baseline); a ValueError names an option that cannot apply."""
        return opts

    def expansion(self, info: NodeInfo, opts: dict) -> int:
        """How many rows each drawn row becomes (enumeration); 1 for sampling estimators."""
        return 1

    def forward(self, lw, node, opts: dict) -> None:
        raise TypeError(f"estimator '{self.name}' has no forward")

    def backward(self, lw, node, opts: dict) -> None:
        raise TypeError(f"estimator '{self.name}' has no backward")

    # Estimators that evaluate the graph below their node on extra rows (evaluates_below)
    def seed_weights(self, lw, node) -> None:
        """Set cw (the cost cotangent seeds, a copy of rw) on the node's extra rows."""

    def forward_below(self, lw, below, above: list) -> None:
        """Emit, after `below`'s own forward, what the extra rows of the nodes `above` (this
        estimator's, outermost first) do to the stochastic node `below`."""

    def backward_below(self, lw, below, above: list) -> None:
        """The backward of forward_below, emitted before `below`'s own backward."""

    # Row-fused scalar lowering (ppl/scalar_lowering.py) of a width-1 node: the same estimate
    # written as straight-line code for one row, for estimators whose backward reads that row only.
    def scalar_support(self, node, opts: dict) -> str | None:
        """None when the estimator has a row-fused form for this node, else why not."""
        return f"estimator '{self.name}' has no row-fused form"

    def scalar_forward(self, sl, node, opts: dict) -> None:
        raise TypeError(f"estimator '{self.name}' has no row-fused forward")

    def scalar_backward(self, sl, node, opts: dict) -> None:
        raise TypeError(f"estimator '{self.name}' has no row-fused backward")


def register(cls):
    REGISTRY[cls.name] = cls()
    return cls


def enumerated_below(lw, node):
    """The enumerated nodes below `node` as generated-code tuple literals (strides, sizes) of
    their row digits, or None. Their rows carry p(c | node's value): an estimator that compares
    or averages learning signals across draws of `node` must first marginalise them over these
    digits (sum_c rw L / sum_c rw); per configuration the comparison is biased."""
    below = G.nx.descendants(lw.an.graph, node.name)
    digits = [(lw.enum_stride[e], REGISTRY["enumerate"].expansion(lw.choices[e][1], lw.choices[e][0].options))
              for e in lw.enum_stride if e.name in below and lw.choices[e][0].estimator == "enumerate"]
    if not digits:
        return None
    return ("(" + "".join(f"{s}, " for s, _ in digits) + ")", "(" + "".join(f"{z}, " for _, z in digits) + ")")


def sample_hard(lw, node):
    """Emit the ordinary draw of a node from its base noise (shared by several estimators)."""
    d = lw.dist(node)
    noise = lw.noise(node, d.noise)
    lw.record_noise(node, noise, d.noise)
    lw.call(d.kernels["sample"], [*lw.param_values(node), noise], [lw.v(node)], node)
    return noise
