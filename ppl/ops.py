"""The op table: every deterministic layer kind and what each part of ppl needs of it.

One entry per op holds its inputs and width rule (the DSL and validation), its parameters,
its kernel calls forward and backward (``lowering.Lowering``; the row-fused lowering rewrites
the same calls into row code, kernels/rowcode.py, so an op's formula is its kernels' body
alone), its second-order forward rule for Price (``estimators/price.py``) and the targets that
have its kernels. The lowerings hold no list of kinds of their own: they render these
templates. Adding an elementwise op is one file, ``kernels/families/<op>.py`` (``declare.unary``:
its entry here is made from it); any other op is one entry here plus its kernels (a family of
``kernels/families/``).

Templates are kernel calls with ``str.format`` fields, read once into call records where an entry
is made (``ppl/calls.py``), over names the lowering provides:
  x0, x1      the inputs' values            out      the op's value
  xj, gj, off input j's value and gradient and its column offset (fwd_each / bwd_each)
  g0, g1      the inputs' gradient buffers  gout     the op's value cotangent
  p0, gp0 ... the op's parameters and their gradients (array lowering: views; row-fused:
              their entries of theta / grad)
  d1_0, d2_0  Price's first / second derivative buffers of input 0 (d1, d2: the op's own)
and the node's attributes (``scale``, ``shift``, ``K`` ...). A template is rendered with only
the names it uses, so naming an input's value costs nothing when the template does not need it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .calls import template


@dataclass(frozen=True)
class Param:
    """A parameter an op owns: its name suffix, shape and initialiser (shape, rng) -> array."""

    suffix: str
    shape: object     # (node) -> tuple
    init: object      # (node, rng) -> ndarray or float


@dataclass(frozen=True)
class Op:
    kind: str
    arity: int                       # node inputs
    doc: str
    width: str = "same"              # "same" (as every input), "one", "out" / "own" (its argument), "sum"
    params: tuple = ()               # Param entries, in allocation order
    # array lowering: one kernel call each (None: nothing to emit)
    fwd: str = ""
    bwd: str | None = None
    bwd_if_input_grad: bool = False  # emit bwd only when input 0 has a gradient buffer
    # ... or one call per input j (any number of inputs): over xj / gj and off, the column
    # offset of input j in the op's value (a concatenation)
    fwd_each: str | None = None
    bwd_each: str | None = None
    # Price's second-order forward rule, None when the op mixes or hides columns; for a cost
    # head, {input index: its Hessian-diagonal rule} (over x*, d1, d2 of that input, cw, H)
    price: object = None
    head: bool = False               # a cost head: a per-row cost (out: its cost rows c)
    user: bool = False               # calls the user's @njit functions attrs fn / grad per row
    unary: bool = False              # an elementwise activation: ppl.<kind>(x) is made from this entry
    targets: frozenset = field(default_factory=lambda: frozenset({"cpu", "cuda"}))

    def __post_init__(self):   # every template read into its call record where the entry is made
        rules = self.price.values() if isinstance(self.price, dict) else [self.price]
        for t in (self.fwd, self.bwd, self.fwd_each, self.bwd_each, *rules):
            if t:
                template(t)


def _unary(kind, doc, price):
    """An elementwise op (kernels/declare.unary): kernels <kind>_fwd / <kind>_bwd and, with a
    second derivative, Price's <kind>_d12."""
    return Op(kind, 1, doc, fwd=f"core.{kind}_fwd({{x0}}, {{out}})",
              bwd=f"core.{kind}_bwd({{x0}}, {{out}}, {{gout}}, {{g0}})", bwd_if_input_grad=True, unary=True,
              price=f"core.{kind}_d12({{x0}}, {{d1_0}}, {{d2_0}}, {{d1}}, {{d2}})" if price else None)


OPS: dict[str, Op] = {op.kind: op for op in (
    Op("param", 0, "A free parameter vector, the same for every row.", width="own",
       params=(Param("", lambda n: (n.width,), lambda n, rng: n.attrs["init"]),),
       fwd="core.broadcast_rows_fwd({p0}, {out})", bwd="core.broadcast_rows_bwd({gout}, {gp0})"),
    Op("affine", 1, "x @ W + b with W of shape (x.width, out).", width="out",
       params=(Param(".W", lambda n: (n.inputs[0].width, n.width),
                     lambda n, rng: rng.normal(0, 1 / np.sqrt(n.inputs[0].width), (n.inputs[0].width, n.width))),
               Param(".b", lambda n: (n.width,), lambda n, rng: 0.0)),
       fwd="core.affine_fwd({x0}, {p0}, {p1}, {out})", bwd="core.affine_bwd({x0}, {p0}, {gout}, {g0}, {gp0}, {gp1})"),
    Op("embed", 1, "Row index[r] of a learned table of `num` rows (a group's parameters by the row's group).",
       width="own", params=(Param("", lambda n: (n.attrs["num"], n.width),
                                  lambda n, rng: np.full((n.attrs["num"], n.width), n.attrs["init"])),),
       fwd="core.embed_fwd({x0}, {p0}, {out})", bwd="core.embed_bwd({x0}, {gout}, {gp0})"),
    Op("add", 2, "Elementwise sum of two nodes of one width.", fwd="core.add_fwd({x0}, {x1}, {out})",
       bwd="core.add_bwd({gout}, {g0}, {g1})",
       price="price.add_d({d1_0}, {d2_0}, {d1_1}, {d2_1}, {d1}, {d2})"),
    Op("mul", 2, "Elementwise product of two nodes of one width.", fwd="core.mul_fwd({x0}, {x1}, {out})",
       bwd="core.mul_bwd({x0}, {x1}, {gout}, {g0}, {g1})",
       price="price.mul_d({x0}, {x1}, {d1_0}, {d2_0}, {d1_1}, {d2_1}, {d1}, {d2})"),
    Op("div", 2, "Elementwise quotient of two nodes of one width (x / y).", fwd="core.div_fwd({x0}, {x1}, {out})",
       bwd="core.div_bwd({x0}, {x1}, {out}, {gout}, {g0}, {g1})"),
    Op("pow", 1, "x ** p, elementwise, for a constant p.", fwd="core.pow_fwd({x0}, {p!r}, {out})",
       bwd="core.pow_bwd({x0}, {p!r}, {out}, {gout}, {g0})", bwd_if_input_grad=True),
    Op("scale_shift", 1, "scale * x + shift with constant scale and shift.",
       fwd="rows.scale_shift_fwd({x0}, {scale!r}, {shift!r}, {out})", bwd="rows.scale_shift_bwd({scale!r}, {gout}, {g0})",
       bwd_if_input_grad=True,
       price="price.scale_d({scale!r}, {d1_0}, {d2_0}, {d1}, {d2})"),
    Op("rowsum", 1, "The sum of a node's columns, as a width-1 node.", width="one",
       fwd="core.row_sum_fwd({x0}, {out}.reshape({out}.shape[0]))",
       bwd="core.row_sum_bwd({gout}.reshape({gout}.shape[0]), {g0})", bwd_if_input_grad=True),
    Op("const", 0, "A constant node: every entry of every row is `value`.", width="own",
       fwd="rows.fill2({out}, {value!r})"),
    Op("concat", -1, "The columns of several nodes side by side.", width="sum",
       fwd_each="rows.put_cols({xj}, {off}, {out})", bwd_each="rows.add_from_cols({gout}, {off}, {gj})"),
    Op("slice", 1, "Columns lo:hi of a node.", width="own",
       fwd="rows.take_cols({x0}, {lo}, {out})", bwd="rows.add_to_cols({gout}, {lo}, {g0})", bwd_if_input_grad=True),
    # width 1 broadcast to `width` columns (x + y, x * y, heads and laws of a width-1 and a width-N
    # node): lowered by its rule (lowering_rules.py) from the row-sum kernels, price: none
    Op("bcast", 1, "A width-1 node's value in every one of `width` columns.", width="own"),
    # a user layer (ppl.layer): fn(rows..., out) per row, grad(rows..., out, gout, g...) its VJP;
    # lowered as a row loop calling them (lowering.py), CPU only
    Op("user_layer", -1, "A user @njit row function (and its VJP) as a layer.", width="own", user=True,
       targets=frozenset({"cpu"})),
    # ---- cost heads: one cost per row, in the rows c; backward seeded by the row weights cw
    Op("total", 1, "The row sum of a node's values, as a cost.", head=True,
       fwd="core.row_sum_fwd({x0}, {c})", bwd="core.row_sum_bwd({cw}, {g0})",
       price={0: "price.hess_total({cw}, {d1}, {d2}, {H})"}),
    Op("bernoulli_nll", 2, "-log Bernoulli(target | sigmoid(logits)), summed over columns.", head=True,
       fwd="core.bernoulli_nll({x0}, {x1}, {c})", bwd="core.bernoulli_nll_bwd({x0}, {x1}, {cw}, {g0}, {g1})",
       price={0: "price.hess_bernoulli_nll_logits({cw}, {x0}, {x1}, {d1}, {d2}, {H})"}),
    Op("gaussian_nll", 3, "-log N(target | loc, scale^2), summed over columns.", head=True,
       fwd="core.gaussian_nll({x0}, {x1}, {x2}, {c})",
       bwd="core.gaussian_nll_bwd({x0}, {x1}, {x2}, {cw}, {g0}, {g1}, {g2})",
       price={0: "price.hess_gaussian_nll_mean({cw}, {x0}, {x2}, {x1}, {d1}, {d2}, {H})",
              2: "price.hess_gaussian_nll_mean({cw}, {x2}, {x0}, {x1}, {d1}, {d2}, {H})",
              1: "price.hess_gaussian_nll_scale({cw}, {x0}, {x1}, {x2}, {d1}, {d2}, {H})"}),
    Op("softmax_xent", 2, "Softmax cross-entropy per group of K columns.", head=True,
       fwd="core.softmax_xent({x0}, {x1}, {K}, {c})", bwd="core.softmax_xent_bwd({x0}, {x1}, {K}, {cw}, {g0}, {g1})"),
    Op("gaussian_kl_std", 2, "Closed-form KL(N(loc, scale^2) || N(0, I)).", head=True,
       fwd="core.gaussian_kl_std({x0}, {x1}, {c})", bwd="core.gaussian_kl_std_bwd({x0}, {x1}, {cw}, {g0}, {g1})"),
    Op("gaussian_kl", 4, "Closed-form KL(N(loc, scale^2) || N(loc2, scale2^2)).", head=True,
       fwd="core.gaussian_kl({x0}, {x1}, {x2}, {x3}, {c})",
       bwd="core.gaussian_kl_bwd({x0}, {x1}, {x2}, {x3}, {cw}, {g0}, {g1}, {g2}, {g3})"),
    # log p(node | params) of a stochastic node: inputs (node, *params); lowered from the node's
    # Distribution entry (and fused into its estimator's VJP where it can be)
    Op("log_prob", -1, "log p(value | parameters) of a stochastic node.", head=True,
       price={0: "price.hess_normal_log_prob_value({cw}, {x0}, {x1}, {x2}, {d1}, {d2}, {H})"}),
    # -log p(value | params) of a law without a head of its own (ppl.dist specs): inputs (*params,
    # value), attribute law (its kind); lowered from the law's log_prob kernels (lowering_rules)
    Op("law_nll", -1, "-log p(value | parameters) under a law, summed over columns.", head=True),
    # KL(q || p) in closed form between two members of one law: inputs (*q params, *p params),
    # attribute law; lowered from the law's kl / kl_bwd kernels (lowering_rules)
    Op("law_kl", -1, "Closed-form KL between two members of one law, summed over columns.", head=True),
    # a user @njit cost per row (and its optional gradient): CPU only
    Op("blackbox", -1, "A user @njit cost per row.", head=True, user=True, targets=frozenset({"cpu"})),
)}

def _declared_ops():
    """The elementwise ops declared in kernel families (kernels/declare.unary)."""
    from .kernels import families
    from .kernels.declare import ops
    for fam in families.modules():
        for op in ops(fam):
            if op.kind in OPS:
                raise TypeError(f"{fam.__name__}: the op {op.kind!r} is declared twice")
            yield _unary(op.kind, op.doc, price=op.d12 is not None)


OPS.update({op.kind: op for op in _declared_ops()})
LAYER_KINDS = frozenset(k for k, op in OPS.items() if k != "param" and not op.head)   # layers reading nodes
HEAD_KINDS = frozenset(k for k, op in OPS.items() if op.head)
