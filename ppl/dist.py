"""Distribution specs: a law and its parameters, not a node. `m.latent(h, prior)` and
`m.observe(name, spec, value)` take them (ppl/declare.py derives the ELBO's terms from them).

    ppl.dist.Bernoulli(logits=ppl.Affine(h, 64, name="dec"))
    ppl.dist.Normal(0.0, 1.0)                    # numbers: constants of the width they describe
    ppl.dist.Categorical(logits=ppl.param("prior", 32), classes=4)

A spec knows from its `distributions.DISTRIBUTIONS` entry its -log p head (`likelihood`), which
draws a node from it (the entry's kind) and nothing else: one class for every law.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import distributions as D
from .nodes import Node, _const, _head, _size, _stochastic
from .errors import ModelError


@dataclass(eq=False)
class Dist:
    """A distribution spec: `kind` a key of distributions.DISTRIBUTIONS, `args` its parameters in
    the entry's order (nodes, or numbers until `bind` makes them constants), `K` the group size of
    a grouped law."""

    kind: str
    args: tuple
    K: int | None = None

    @property
    def entry(self) -> D.Distribution:
        return D.DISTRIBUTIONS[self.kind]

    def describe(self) -> str:
        """Bernoulli(logits=p0), Normal(loc=0, scale=1), ..."""
        def one(v):
            if isinstance(v, Node):
                return repr(v.attrs["value"]) if v.kind == "const" else v.name
            return repr(v)
        args = ", ".join(f"{p}={one(v)}" for p, v in zip(self.entry.params, self.args))
        return f"{self.entry.name}({args}{f', classes={self.K}' if self.K else ''})"

    @property
    def width(self) -> int | None:
        widths = {v.width for v in self.args if isinstance(v, Node)}
        return widths.pop() if len(widths) == 1 else None

    def bind(self, model, width: int, owner: str) -> "Dist":
        """This spec with numbers made constant nodes of `width` columns in `model`, checked: every
        parameter of that width, in the model, a positive constant where the law needs one."""
        out = []
        for p, v in zip(self.entry.params, self.args):
            if isinstance(v, Node):
                if v.model is not model:
                    raise ModelError(f"{owner}: {self.entry.name} parameter {p} '{v.name}' belongs to another model "
                                     f"('{v.model.name}')")
                if v.width != width:
                    raise ModelError(f"{owner}: {self.entry.name} parameter {p} '{v.name}' has width {v.width}, "
                                     f"the value it describes {width}; they must agree")
            else:
                v = _const(model, v, width, f"{owner}: {self.entry.name} parameter {p}")
                if p in self.entry.positive and not v.attrs["value"] > 0:
                    raise ModelError(f"{owner}: {self.entry.name} parameter {p} is the constant {v.attrs['value']!r}; "
                                     f"it must be > 0")
            out.append(v)
        if self.K is not None and width % self.K:
            raise ModelError(f"{owner}: {self.entry.name} with classes={self.K} describes a width that is a multiple "
                             f"of {self.K}, not {width}")
        return Dist(self.kind, tuple(out), self.K)

    def mapped(self, fn) -> "Dist":
        """The spec with every node parameter replaced by fn(node) (a copy of the graph)."""
        return Dist(self.kind, tuple(fn(v) if isinstance(v, Node) else v for v in self.args), self.K)

    def nll(self, value: Node) -> Node:
        """The cost head -log p(value | parameters), summed over columns (a bound spec)."""
        attrs = {"K": self.K} if self.K is not None else {}
        return _head(self.entry.likelihood, tuple(self.args) + (value,), **attrs)

    def draw(self, name: str) -> Node:
        """A stochastic node of this law named `name` (a bound spec)."""
        attrs = {"K": self.K} if self.K is not None else {}
        return _stochastic(self.kind, name, dict(zip(self.entry.params, self.args)), self.width, **attrs)


def _spec(kind: str, owner: str, **args) -> Dist:
    for p, v in args.items():
        if isinstance(v, Node):
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            raise ModelError(f"{owner}: {p} must be a ppl node or a finite number, got {v!r}")
    return Dist(kind, tuple(args.values()))


def Bernoulli(logits) -> Dist:
    """Independent binary units, P(1) = sigmoid(logits); -log p is ppl.bernoulli_nll."""
    return _spec("bernoulli", "ppl.dist.Bernoulli", logits=logits)


def Normal(loc, scale) -> Dist:
    """Independent Gaussian units N(loc, scale^2), scale > 0; -log p is ppl.gaussian_nll."""
    return _spec("normal", "ppl.dist.Normal", loc=loc, scale=scale)


def Categorical(logits, classes: int) -> Dist:
    """Groups of one-hot categorical units, softmax(logits) per group of `classes` columns; -log p
    is ppl.categorical_nll."""
    d = _spec("categorical", "ppl.dist.Categorical", logits=logits)
    d.K = _size(classes, "ppl.dist.Categorical: classes", lo=2)
    if isinstance(logits, Node) and logits.width % d.K:
        raise ModelError(f"ppl.dist.Categorical: logits '{logits.name}' width {logits.width} is not a multiple of "
                         f"classes={d.K}; use Affine(..., groups * classes)")
    return d


# the guide's node kinds each prior kind may describe (the same support)
SUPPORTS = {"bernoulli": ("bernoulli", "bernoulli_probit"), "normal": ("normal", "laplace"),
            "categorical": ("categorical",)}
