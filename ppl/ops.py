"""The op table: every deterministic layer kind and what each part of ppl needs of it.

One entry per op holds its inputs and width rule (the DSL and validation), its parameters,
its array-kernel calls forward and backward (``lowering.Lowering``), its scalar formula and
the cotangent of each input for row-fused code (``scalar_lowering``), its second-order forward
rule for Price (``estimators/price.py``) and the targets that have its kernels. The lowerings
hold no list of kinds of their own: they render these templates. Adding an op is one entry
here plus its kernels (``kernels/cpu.py``, ``kernels/gpu.py``, ``kernels/scalar.py``).

Templates are ``str.format`` strings over names the lowering provides:
  x0, x1      the inputs' values            out      the op's value
  g0, g1      the inputs' gradient buffers  gout / g the op's value cotangent
  p0, gp0 ... the op's parameters and their gradients (array lowering: views; scalar: the
              offsets o0, o1 ... into theta / grad)
  d1_0, d2_0  Price's first / second derivative buffers of input 0 (d1, d2: the op's own)
and the node's attributes (``scale``, ``shift``, ``K`` ...). A template is rendered with only
the names it uses, so naming an input's value costs nothing when the template does not need it.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

# Price's activation codes: the elementwise ops whose first and second derivatives the
# second-order forward pass of kernels/cpu_price.py (and gpu_price.py) carries
from .kernels.cpu_price import ACTIVATIONS as PRICE_ACTIVATIONS

_FMT = string.Formatter()



def fields(template: str) -> set:
    """The names a template uses (``{x0}`` and ``{scale!r}`` give x0 and scale)."""
    return {name for _, name, _, _ in _FMT.parse(template) if name}


def render(template: str, **values) -> str:
    """Format a template; a value given as a callable is called only when the template uses
    its name (reading a node's value may emit code, e.g. repeating a data-row value)."""
    need = fields(template)
    return template.format(**{k: (v() if callable(v) else v) for k, v in values.items() if k in need})


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
    width: str = "same"              # "same" (as every input), "one", "out" (its argument), "own"
    params: tuple = ()               # Param entries, in allocation order
    # array lowering: one kernel call each (None: nothing to emit)
    fwd: str = ""
    bwd: str | None = None
    bwd_if_input_grad: bool = False  # emit bwd only when input 0 has a gradient buffer
    # row-fused scalar lowering
    scalar: str | None = None        # the value's expression
    vjp: tuple = ()                  # per input: cotangent term, or (condition, term) for a branch
    param_vjp: tuple = ()            # per parameter slot (o0, o1, ...): gradient term
    # Price's second-order forward rule, None when the op mixes or hides columns
    price: str | None = None
    targets: frozenset = field(default_factory=lambda: frozenset({"cpu", "cuda"}))


def _unary(kind, doc, value, factor, price=True):
    """An elementwise activation: kernels <kind>_fwd / <kind>_bwd, scalar <value> and the
    factor d out / d x (over x0 and out; or a (condition, term) branch), Price's activation code."""
    term = factor if isinstance(factor, tuple) else f"{{g}} * {factor}"
    return Op(kind, 1, doc, fwd=f"K_.{kind}_fwd({{x0}}, {{out}})",
              bwd=f"K_.{kind}_bwd({{x0}}, {{out}}, {{gout}}, {{g0}})", bwd_if_input_grad=True,
              scalar=f"F_({value})", vjp=(term,),
              price=(f"P_.activation_d({PRICE_ACTIVATIONS[kind]}, {{x0}}, {{d1_0}}, {{d2_0}}, {{d1}}, {{d2}})"
                     if price else None))


OPS: dict[str, Op] = {op.kind: op for op in (
    Op("param", 0, "A free parameter vector, the same for every row.", width="own",
       params=(Param("", lambda n: (n.width,), lambda n, rng: n.attrs["init"]),),
       fwd="K_.broadcast_rows_fwd({p0}, {out})", bwd="K_.broadcast_rows_bwd({gout}, {gp0})",
       scalar="theta[{o0}]", param_vjp=("{g}",)),
    Op("affine", 1, "x @ W + b with W of shape (x.width, out).", width="out",
       params=(Param(".W", lambda n: (n.inputs[0].width, n.width),
                     lambda n, rng: rng.normal(0, 1 / np.sqrt(n.inputs[0].width), (n.inputs[0].width, n.width))),
               Param(".b", lambda n: (n.width,), lambda n, rng: 0.0)),
       fwd="K_.affine_fwd({x0}, {p0}, {p1}, {out})", bwd="K_.affine_bwd({x0}, {p0}, {gout}, {g0}, {gp0}, {gp1})",
       scalar="{x0} * theta[{o0}] + theta[{o1}]", vjp=("{g} * theta[{o0}]",), param_vjp=("{g} * {x0}", "{g}")),
    _unary("sigmoid", "Elementwise sigmoid.", "S_.sigmoid({x0})", "S_.sigmoid_grad({x0})"),
    _unary("tanh", "Elementwise tanh.", "S_.tanh({x0})", "S_.tanh_grad_out({out})"),
    _unary("relu", "Elementwise relu.", "S_.relu({x0})", ("{x0} > 0", "{g}")),
    _unary("softplus", "Elementwise softplus.", "S_.softplus({x0})", "S_.sigmoid({x0})"),
    _unary("exp", "Elementwise exp.", "S_.exp({x0})", "{out}"),
    _unary("sqrt1p", "sqrt(1 + z^2): a smooth positive scale for Gaussian heads (seed 004).",
           "S_.sqrt1p({x0})", "S_.sqrt1p_grad({x0})"),
    Op("add", 2, "Elementwise sum of two nodes of one width.", fwd="K_.add_fwd({x0}, {x1}, {out})",
       bwd="K_.add_bwd({gout}, {g0}, {g1})", scalar="{x0} + {x1}", vjp=("{g}", "{g}"),
       price="P_.add_d({d1_0}, {d2_0}, {d1_1}, {d2_1}, {d1}, {d2})"),
    Op("mul", 2, "Elementwise product of two nodes of one width.", fwd="K_.mul_fwd({x0}, {x1}, {out})",
       bwd="K_.mul_bwd({x0}, {x1}, {gout}, {g0}, {g1})", scalar="{x0} * {x1}", vjp=("{g} * {x1}", "{g} * {x0}"),
       price="P_.mul_d({x0}, {x1}, {d1_0}, {d2_0}, {d1_1}, {d2_1}, {d1}, {d2})"),
    Op("scale_shift", 1, "scale * x + shift with constant scale and shift.",
       fwd="R_.scale_shift_fwd({x0}, {scale!r}, {shift!r}, {out})", bwd="R_.scale_shift_bwd({scale!r}, {gout}, {g0})",
       bwd_if_input_grad=True, scalar="F_(S_.scale_shift({x0}, {scale!r}, {shift!r}))", vjp=("F_({scale!r} * {g})",),
       price="P_.scale_d({scale!r}, {d1_0}, {d2_0}, {d1}, {d2})"),
    Op("rowsum", 1, "The sum of a node's columns, as a width-1 node.", width="one",
       fwd="K_.row_sum_fwd({x0}, {out}.reshape({out}.shape[0]))",
       bwd="K_.row_sum_bwd({gout}.reshape({gout}.shape[0]), {g0})", bwd_if_input_grad=True,
       scalar="{x0}", vjp=("{g}",)),
)}

LAYER_KINDS = frozenset(k for k in OPS if k != "param")   # ops that read other nodes
