"""The op table: every deterministic layer kind and what each part of ppl needs of it.

One entry per op holds its inputs and width rule (the DSL and validation), its parameters,
its kernel calls forward and backward (``lowering.ArrayLowering``; the row-fused lowering rewrites
the same calls into row code, kernels/rowcode.py, so an op's formula is its kernels' body
alone), its second-order forward rule for Price (``estimators/price.py``) and the targets that
have its kernels. The lowerings hold no list of kinds of their own: they render these
templates. Adding an elementwise op is one file, ``kernels/families/<op>.py`` (``declare.unary``:
its entry here is made from it); any other op is one entry here plus its kernels (a family of
``kernels/families/``).

Templates are call records (``KERNELS.<alias>.<kernel>.on(field, ...)``, ``ppl/calls.py``) whose
arguments are fields the lowering fills by name (``lit(attr)``: a node attribute as its literal;
``flat(buf)``: a one-column buffer as its 1D view):
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

from .calls import KERNELS, KernelRef, flat, lit, template


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
    fwd: object = None               # calls.Template (KernelRef.on)
    bwd: object = None
    bwd_if_input_grad: bool = False  # emit bwd only when input 0 has a gradient buffer
    # ... or one call per input j (any number of inputs): over xj / gj and off, the column
    # offset of input j in the op's value (a concatenation)
    fwd_each: object = None
    bwd_each: object = None
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
    core = lambda name: KernelRef("core", f"{kind}_{name}")   # noqa: E731
    return Op(kind, 1, doc, fwd=core("fwd").on("x0", "out"), bwd=core("bwd").on("x0", "out", "gout", "g0"),
              bwd_if_input_grad=True, unary=True,
              price=core("d12").on("x0", "d1_0", "d2_0", "d1", "d2") if price else None)


OPS: dict[str, Op] = {op.kind: op for op in (
    Op("param", 0, "A free parameter vector, the same for every row.", width="own",
       params=(Param("", lambda n: (n.width,), lambda n, rng: n.attrs["init"]),),
       fwd=KERNELS.core.broadcast_rows_fwd.on("p0", "out"), bwd=KERNELS.core.broadcast_rows_bwd.on("gout", "gp0")),
    Op("affine", 1, "x @ W + b with W of shape (x.width, out).", width="out",
       params=(Param(".W", lambda n: (n.inputs[0].width, n.width),
                     lambda n, rng: rng.normal(0, 1 / np.sqrt(n.inputs[0].width), (n.inputs[0].width, n.width))),
               Param(".b", lambda n: (n.width,), lambda n, rng: 0.0)),
       fwd=KERNELS.core.affine_fwd.on("x0", "p0", "p1", "out"),
       bwd=KERNELS.core.affine_bwd.on("x0", "p0", "gout", "g0", "gp0", "gp1")),
    Op("embed", 1, "Row index[r] of a learned table of `num` rows (a group's parameters by the row's group).",
       width="own", params=(Param("", lambda n: (n.attrs["num"], n.width),
                                  lambda n, rng: np.full((n.attrs["num"], n.width), n.attrs["init"])),),
       fwd=KERNELS.core.embed_fwd.on("x0", "p0", "out"), bwd=KERNELS.core.embed_bwd.on("x0", "gout", "gp0")),
    Op("add", 2, "Elementwise sum of two nodes of one width.", fwd=KERNELS.core.add_fwd.on("x0", "x1", "out"),
       bwd=KERNELS.core.add_bwd.on("gout", "g0", "g1"),
       price=KERNELS.price.add_d.on("d1_0", "d2_0", "d1_1", "d2_1", "d1", "d2")),
    Op("mul", 2, "Elementwise product of two nodes of one width.", fwd=KERNELS.core.mul_fwd.on("x0", "x1", "out"),
       bwd=KERNELS.core.mul_bwd.on("x0", "x1", "gout", "g0", "g1"),
       price=KERNELS.price.mul_d.on("x0", "x1", "d1_0", "d2_0", "d1_1", "d2_1", "d1", "d2")),
    Op("div", 2, "Elementwise quotient of two nodes of one width (x / y).",
       fwd=KERNELS.core.div_fwd.on("x0", "x1", "out"),
       bwd=KERNELS.core.div_bwd.on("x0", "x1", "out", "gout", "g0", "g1")),
    *(Op(kind, 2, f"Elementwise {kind[:3]}(x, y) of two nodes of one width (the cotangent to the input taken, to x "
               f"at a tie; attribute sign: 1 min, -1 max).",
         fwd=KERNELS.core.extremum_fwd.on("x0", "x1", lit("sign"), "out"),
         bwd=KERNELS.core.extremum_bwd.on("x0", "x1", lit("sign"), "gout", "g0", "g1")) for kind in ("minimum", "maximum")),
    Op("pow", 1, "x ** p, elementwise, for a constant p.", fwd=KERNELS.core.pow_fwd.on("x0", lit("p"), "out"),
       bwd=KERNELS.core.pow_bwd.on("x0", lit("p"), "out", "gout", "g0"), bwd_if_input_grad=True),
    Op("scale_shift", 1, "scale * x + shift with constant scale and shift.",
       fwd=KERNELS.rows.scale_shift_fwd.on("x0", lit("scale"), lit("shift"), "out"),
       bwd=KERNELS.rows.scale_shift_bwd.on(lit("scale"), "gout", "g0"),
       bwd_if_input_grad=True,
       price=KERNELS.price.scale_d.on(lit("scale"), "d1_0", "d2_0", "d1", "d2")),
    Op("rowsum", 1, "The sum of a node's columns, as a width-1 node.", width="one",
       fwd=KERNELS.core.row_sum_fwd.on("x0", flat("out")),
       bwd=KERNELS.core.row_sum_bwd.on(flat("gout"), "g0"), bwd_if_input_grad=True),
    Op("logsumexp", 1, "log sum_j exp(x_j) of a node's columns, as a width-1 node.", width="one",
       fwd=KERNELS.core.log_sum_exp_fwd.on("x0", flat("out")),
       bwd=KERNELS.core.log_sum_exp_bwd.on("x0", flat("out"), flat("gout"), "g0"), bwd_if_input_grad=True),
    Op("log_matvec", 2, "out_k = log sum_j exp(a_j + B_jk) of a (width J) and B (J rows of K, j-major).",
       width="own", fwd=KERNELS.core.log_matvec_fwd.on("x0", "x1", "out"),
       bwd=KERNELS.core.log_matvec_bwd.on("x0", "x1", "out", "gout", "g0", "g1")),
    Op("dots", 2, "out_k = sum_j a_j B_kj of a (width J) and B (K rows of J, k-major): a's dot product with each row.",
       width="own", fwd=KERNELS.core.dots_fwd.on("x0", "x1", "out"),
       bwd=KERNELS.core.dots_bwd.on("x0", "x1", "gout", "g0", "g1")),
    # log p(value | params) under a law as a width-1 value (a summed-out state's terms,
    # language/markov.py): inputs (*params, value), attribute law; lowered as law_nll is
    Op("law_logp", -1, "log p(value | parameters) under a law, summed over columns, as a width-1 node.",
       width="one"),
    Op("const", 0, "A constant node: every entry of every row is `value`.", width="own",
       fwd=KERNELS.rows.fill2.on("out", lit("value"))),
    Op("concat", -1, "The columns of several nodes side by side.", width="sum",
       fwd_each=KERNELS.rows.put_cols.on("xj", "off", "out"),
       bwd_each=KERNELS.rows.add_from_cols.on("gout", "off", "gj")),
    Op("slice", 1, "Columns lo:hi of a node.", width="own",
       fwd=KERNELS.rows.take_cols.on("x0", "lo", "out"), bwd=KERNELS.rows.add_to_cols.on("gout", "lo", "g0"),
       bwd_if_input_grad=True),
    # width 1 broadcast to `width` columns (x + y, x * y, heads and laws of a width-1 and a width-N
    # node): lowered by its rule (lowering_rules.py) from the row-sum kernels, price: none
    Op("bcast", 1, "A width-1 node's value in every one of `width` columns.", width="own"),
    # a user layer (ppl.layer): fn(rows..., out) per row, grad(rows..., out, gout, g...) its VJP;
    # lowered as a row loop calling them (lowering.py), CPU only
    Op("user_layer", -1, "A user @njit row function (and its VJP) as a layer.", width="own", user=True,
       targets=frozenset({"cpu"})),
    # ---- cost heads: one cost per row, in the rows c; backward seeded by the row weights cw
    Op("total", 1, "The row sum of a node's values, as a cost.", head=True,
       fwd=KERNELS.core.row_sum_fwd.on("x0", "c"), bwd=KERNELS.core.row_sum_bwd.on("cw", "g0"),
       price={0: KERNELS.price.hess_total.on("cw", "d1", "d2", "H")}),
    Op("bernoulli_nll", 2, "-log Bernoulli(target | sigmoid(logits)), summed over columns.", head=True,
       fwd=KERNELS.core.bernoulli_nll.on("x0", "x1", "c"),
       bwd=KERNELS.core.bernoulli_nll_bwd.on("x0", "x1", "cw", "g0", "g1"),
       price={0: KERNELS.price.hess_bernoulli_nll_logits.on("cw", "x0", "x1", "d1", "d2", "H")}),
    Op("gaussian_nll", 3, "-log N(target | loc, scale^2), summed over columns.", head=True,
       fwd=KERNELS.core.gaussian_nll.on("x0", "x1", "x2", "c"),
       bwd=KERNELS.core.gaussian_nll_bwd.on("x0", "x1", "x2", "cw", "g0", "g1", "g2"),
       price={0: KERNELS.price.hess_gaussian_nll_mean.on("cw", "x0", "x2", "x1", "d1", "d2", "H"),
              2: KERNELS.price.hess_gaussian_nll_mean.on("cw", "x2", "x0", "x1", "d1", "d2", "H"),
              1: KERNELS.price.hess_gaussian_nll_scale.on("cw", "x0", "x1", "x2", "d1", "d2", "H")}),
    Op("softmax_xent", 2, "Softmax cross-entropy per group of K columns.", head=True,
       fwd=KERNELS.core.softmax_xent.on("x0", "x1", "K", "c"),
       bwd=KERNELS.core.softmax_xent_bwd.on("x0", "x1", "K", "cw", "g0", "g1")),
    Op("gaussian_kl_std", 2, "Closed-form KL(N(loc, scale^2) || N(0, I)).", head=True,
       fwd=KERNELS.core.gaussian_kl_std.on("x0", "x1", "c"),
       bwd=KERNELS.core.gaussian_kl_std_bwd.on("x0", "x1", "cw", "g0", "g1")),
    Op("gaussian_kl", 4, "Closed-form KL(N(loc, scale^2) || N(loc2, scale2^2)).", head=True,
       fwd=KERNELS.core.gaussian_kl.on("x0", "x1", "x2", "x3", "c"),
       bwd=KERNELS.core.gaussian_kl_bwd.on("x0", "x1", "x2", "x3", "cw", "g0", "g1", "g2", "g3")),
    # log p(node | params) of a stochastic node: inputs (node, *params); lowered from the node's
    # Distribution entry (and fused into its estimator's VJP where it can be)
    Op("log_prob", -1, "log p(value | parameters) of a stochastic node.", head=True,
       price={0: KERNELS.price.hess_normal_log_prob_value.on("cw", "x0", "x1", "x2", "d1", "d2", "H")}),
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
