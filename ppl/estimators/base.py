"""The estimator interface and its registry.

An estimator is small and stateless: it says whether it applies to a stochastic node, whether
it is unbiased, and emits the node's forward (sampling) and backward (what reaches the node's
parameters) code through the compiler's lowering context. Learnable state (baselines,
temperatures) is declared through the context, so it lives in the program's parameter set.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    from .. import graph as G
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
    lw.noise_of[node] = noise
    lw.noise_kind[node] = d.noise
    lw.call(d.kernels["sample"], [*lw.param_values(node), noise], [lw.v(node)], node)
    return noise
