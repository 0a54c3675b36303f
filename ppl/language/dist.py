"""Distribution specs: a law and its parameters, not a node. `m.latent(h, prior)` and
`m.observe(name, spec, value)` take them (ppl/language/declare.py derives the ELBO's terms from them).

    ppl.dist.Bernoulli(logits=ppl.Affine(h, 64, name="dec"))
    ppl.dist.Normal(0.0, 1.0)                    # numbers: constants of the width they describe
    ppl.dist.Categorical(logits=ppl.param("prior", 32), classes=4)

A spec knows from its `distributions.DISTRIBUTIONS` entry its -log p head (`likelihood`), which
draws a node from it (the entry's kind) and nothing else: one class for every law.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import distributions as D
from .nodes import Node, _const, _head, _size, _stochastic, broadcast, law_arguments
from ..errors import ModelError


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
        """The law's table entry (ppl/laws/): its name, parameters, support, kernels."""
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
        """The width its node arguments share, or None (numbers only, or several widths)."""
        widths = {v.width for v in self.args if isinstance(v, Node)}
        return widths.pop() if len(widths) == 1 else None

    def bind(self, model, width: int, owner: str) -> "Dist":
        """This spec with numbers made constant nodes of `width` columns in `model`, checked: every
        parameter of that width, in the model, a constant within the law's domain (> 0, [0, 1], a
        count, ...)."""
        out = []
        for p, v in zip(self.entry.params, self.args):
            if isinstance(v, Node):
                if v.model is not model:
                    raise ModelError(f"{owner}: {self.entry.name} parameter {p} '{v.name}' belongs to another model "
                                     f"('{v.model.name}')")
                v = broadcast(v, width)   # a width-1 parameter describes every column
                if v.width != width:
                    raise ModelError(f"{owner}: {self.entry.name} parameter {p} '{v.name}' has width {v.width}, "
                                     f"the value it describes {width}; they must agree")
            else:
                v = _const(model, v, width, f"{owner}: {self.entry.name} parameter {p}")
                need = self.entry.constant_problem(p, v.attrs["value"])
                if need:
                    raise ModelError(f"{owner}: {self.entry.name} parameter {p} is the constant {v.attrs['value']!r}; "
                                     f"it must be {need}")
            out.append(v)
        if self.K is not None and width % self.K:
            raise ModelError(f"{owner}: {self.entry.name} with classes={self.K} describes a width that is a multiple "
                             f"of {self.K}, not {width}")
        return Dist(self.kind, tuple(out), self.K)

    def mapped(self, fn) -> "Dist":
        """The spec with every node parameter replaced by fn(node) (a copy of the graph)."""
        return Dist(self.kind, tuple(fn(v) if isinstance(v, Node) else v for v in self.args), self.K)

    def nll(self, value: Node) -> Node:
        """The cost head -log p(value | parameters), summed over columns (a bound spec): the law's
        own head, or its log_prob kernels with the sign changed (ops "law_nll")."""
        attrs = {"K": self.K} if self.K is not None else {}
        if self.entry.likelihood is None:
            return _head("law_nll", tuple(self.args) + (value,), law=self.kind, **attrs)
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


def _law_spec(law: D.Distribution):
    """The spec constructor of a law: ppl.dist.<Law>(*params, [classes=K], [variant keywords])."""
    owner = f"ppl.dist.{law.constructor}"

    def make(*args, **kw) -> Dist:
        entry, params, classes = law_arguments(law, owner, args, kw)
        d = _spec(entry.kind, owner, **params)
        if entry.grouped:
            d.K = _size(classes, f"{owner}: classes", lo=2)
            first = d.args[0]
            if isinstance(first, Node) and first.width % d.K:
                raise ModelError(f"{owner}: {entry.params[0]} '{first.name}' width {first.width} is not a multiple "
                                 f"of classes={d.K}; use Affine(..., groups * classes)")
        return d

    make.__signature__ = D.law_signature(law)
    make.__name__ = make.__qualname__ = law.constructor
    make.__doc__ = f"{law.doc} As a spec: a prior (m.latent) or a likelihood (m.observe)."
    return make


# ppl.dist.Bernoulli, ppl.dist.Normal, ...: one spec constructor per law (ppl/laws/)
LAW_SPECS = {law.constructor: _law_spec(law) for law in D.DISTRIBUTIONS.values() if law.constructor}
globals().update(LAW_SPECS)


def describes(prior: Dist, kind: str) -> bool:
    """Whether a prior of this spec describes the values of a node of `kind` (the same support)."""
    return prior.entry.support == D.DISTRIBUTIONS[kind].support


def constructor_for(kind: str) -> str:
    """The constructor name of the law of a node kind (a variant's: the law that reaches it)."""
    law = D.DISTRIBUTIONS[kind]
    if law.constructor:
        return law.constructor
    return next(e.constructor for e in D.DISTRIBUTIONS.values()
                if any(kind in c.values() for c in e.variants.values()) or kind in e.by_param.values())

__all__ = ["Dist", *LAW_SPECS, "describes", "constructor_for"]   # the public names (ppl.dist.*)
