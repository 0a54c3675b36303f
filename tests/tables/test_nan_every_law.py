"""NaN and inf in any parameter of any law are refused in the step, naming the law, the node and
the parameter, in both dtypes and both lowerings (float32 array kernels with every law; float64
row-fused code with every law of width 1 that has a row form): a NaN never becomes a draw (noise + NaN > 0 is False: a
silent 0). Each model holds a node of several laws. And NaN and inf through every layer op of the
table reach its cost, never a finite number (the elementwise ops: tests/tables/test_validation.py)."""
import numpy as np
import pytest

import ppl
from ppl import Affine, Model, ModelError
from ppl.distributions import DISTRIBUTIONS
from ppl.dsl import LAW_NODES

K = 3   # classes of the grouped laws
# a variant without a constructor of its own: (its law's constructor, the keyword that selects it)
VARIANT = {"bernoulli_probit": ("Bernoulli", {"link": "probit"}), "bernoulli_probs": ("Bernoulli", {}),
           "binomial_logits": ("Binomial", {}), "categorical_probs": ("Categorical", {}),
           "geometric_logits": ("Geometric", {})}
NO_ROW_FORM = {"beta", "student_t"}   # their draws have no row form: the row-fused step is not made for them


def _kept(kind, d, grouped):
    return grouped or not (d.grouped or kind in NO_ROW_FORM)


def build(kinds, grouped=True):
    """A node z_<kind> of each law of `kinds` (grouped=False: those of width 1 with a row form), each parameter made valid from an Affine layer a_<kind>_<param>
    (sigmoid onto (0, 1), softplus onto the positive reals), a count a constant; a cost of each."""
    with Model(f"nan_laws_{kinds[0]}") as m:
        x = m.input("x", 1)
        for kind in kinds:
            d = DISTRIBUTIONS[kind]
            if not _kept(kind, d, grouped):
                continue
            ctor, extra = VARIANT.get(kind, (d.constructor, {}))
            width = K if d.grouped else 1
            args = {}
            for p in d.params:
                c = d.constraints.get(p)
                if c == "count":
                    args[p] = 5.0
                    continue
                a = Affine(x, width, name=f"a_{kind}_{p}")
                if c in ("unit", "unit_positive"):
                    a = ppl.sigmoid(a)
                elif c in ("weights", "nonnegative"):
                    a = ppl.softplus(a)
                elif p in d.positive:
                    a = ppl.softplus(a) + 0.5
                args[p] = a
            if d.grouped:
                extra = {**extra, "classes": K}
            z = LAW_NODES[ctor](f"z_{kind}", **args, **extra)
            m.cost(f"c_{kind}", ppl.total(z * 1.0))
    return m


# laws per model: a step's compile time grows faster than the step (one model of all: 4x the time);
# the row-fused step, one function of scalar code, compiles fastest in smaller pieces
CHUNK = {True: 7, False: 4}


@pytest.mark.parametrize("dtype,grouped", [(np.float32, True), (np.float64, False)])
def test_nan_and_inf_in_every_laws_parameters(dtype, grouped):
    every = [k for k, d in DISTRIBUTIONS.items() if _kept(k, d, grouped)]
    for i in range(0, len(every), CHUNK[grouped]):
        kinds = every[i:i + CHUNK[grouped]]
        prog = build(kinds, grouped).compile(dtype=dtype, estimators="score")
        assert ("row-fused" in prog.layout.lowering) == (not grouped)
        x = np.ones((4, 1))
        assert np.isfinite(prog.loss(x))
        for kind in kinds:
            d = DISTRIBUTIONS[kind]
            for p in d.params:
                if d.constraints.get(p) == "count":
                    continue
                squashed = d.constraints.get(p) in ("unit", "unit_positive")   # sigmoid(inf) = 1: a valid probability
                for bad in (np.nan,) if squashed else (np.nan, np.inf):
                    b = prog.params[f"a_{kind}_{p}.b"]
                    old = b.copy()
                    b[0] = bad
                    name = d.name.replace("(", r"\(").replace(")", r"\)")
                    with pytest.raises(ModelError, match=rf"{name} 'z_{kind}': {p} '[^']*' "):
                        prog.loss(x)
                    b[:] = old
        assert np.isfinite(prog.loss(x))


def _layer_ops():
    """A cost per layer op of the table (ppl/ops.py) past the elementwise ones, each reading a
    layer `a` whose first column a test makes NaN (or inf), or a table row (Embed)."""
    with Model("nan_layer_ops") as m:
        x, g = m.input("x", 1), m.input("g", 1)
        a, b = Affine(x, 2, name="a"), Affine(x, 2, name="b")
        exprs = {"add": a + b, "mul": a * b, "div": a / (ppl.softplus(b) + 1.0), "pow": ppl.softplus(a) ** 1.5,
                 "scale_shift": 2.0 * a + 1.0, "rowsum": ppl.rowsum(a), "concat": ppl.concat([a, b]),
                 "slice": a[:, :1], "bcast": ppl.rowsum(a) + b, "affine": Affine(a, 2, name="c"),
                 "embed": ppl.Embed(g, 3, 2, name="table") * 1.0}
        for k, e in exprs.items():
            m.cost(f"c_{k}", ppl.total(e))
    return m, sorted(exprs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_through_every_layer_op(dtype):
    """NaN and inf through every layer op (sums, products, quotients, powers, scalings, row sums,
    concatenations, slices, broadcasts, affine maps, table lookups) reach the op's cost: a NaN
    cost, never a number (inf may become NaN, as inf - inf does; never a finite value)."""
    m, ops = _layer_ops()
    prog = m.compile(dtype=dtype)
    data = {"x": np.ones((3, 1)), "g": np.array([[0.0], [1.0], [2.0]])}
    assert all(np.isfinite(v) for v in prog.loss_parts(data).values())
    for bad in (np.nan, np.inf):
        prog.params["a.b"][0] = bad
        prog.params["table"][1, 0] = bad
        parts = prog.loss_parts(data)
        for op in ops:
            assert not np.isfinite(parts[f"c_{op}"]), (op, bad, parts[f"c_{op}"])
            if np.isnan(bad):
                assert np.isnan(parts[f"c_{op}"]), (op, parts[f"c_{op}"])
        prog.params["a.b"][0] = 0.0
        prog.params["table"][1, 0] = 0.0
