"""ppl.minimum, ppl.maximum and ppl.clip (ops.py, kernels/families/elementwise.py): values and
gradients against NumPy and central differences away from ties, the stated conventions at a tie
(the cotangent to the first input; clip passes it at its bounds), NaN kept, and the errors."""
import numpy as np
import pytest

import ppl

X = np.array([[1.1, 2.0], [0.2, -0.5], [0.7, 0.3]])
Y = np.array([[0.5, 0.1], [0.3, 0.6], [0.4, 0.0]])
A = np.array([0.5, -1.0])


def _numpy_loss(a, x=X, y=Y):
    z = np.minimum(x * a, y) + np.maximum(a * x, 0.3) + np.clip(x * a, -0.2, 0.4)
    return (z * z).sum(1).mean()


def _model(name, lowering="auto"):
    with ppl.Model(name) as m:
        x, y = m.input("x", 2), m.input("y", 2)
        a = ppl.param("a", 2, A)
        z = ppl.minimum(x * a, y) + ppl.maximum(a * x, 0.3) + ppl.clip(x * a, -0.2, 0.4)
        m.cost("c", ppl.total(z * z))
    return m.compile(dtype=np.float64, lowering=lowering)


def test_values_and_gradients_match_numpy_away_from_ties():
    loss, g = _model("extrema").grad({"x": X, "y": Y})
    assert abs(loss - _numpy_loss(A)) < 1e-12
    e = np.array([(_numpy_loss(A + h) - _numpy_loss(A - h)) / 2e-6 for h in np.eye(2) * 1e-6])
    np.testing.assert_allclose(g["a"], e, rtol=1e-7)


def test_the_row_fused_lowering_agrees():
    with ppl.Model("extrema_row") as m:
        x = m.input("x", 1)
        a = ppl.param("a", 1, 0.7)
        m.cost("c", ppl.total(ppl.clip(ppl.maximum(a * x, -0.5) + ppl.minimum(x, a), -1.0, 0.9) * x))
    data = {"x": np.array([[0.3], [-2.0], [1.5], [0.6]])}
    rows, arrays = (m.compile(dtype=np.float64, lowering=k) for k in ("row-fused", "arrays"))
    (l1, g1), (l2, g2) = rows.grad(data), arrays.grad(data)
    assert abs(l1 - l2) < 1e-12 and abs(g1["a"][0] - g2["a"][0]) < 1e-12


def test_a_tie_sends_the_cotangent_to_the_first_input_and_clip_passes_it_at_its_bounds():
    from ppl.kernels.cpu import core
    a, b, g = np.array([[1.0, 2.0]]), np.array([[1.0, 3.0]]), np.array([[1.0, 1.0]])
    for sign in (1.0, -1.0):   # minimum, maximum
        ga, gb = np.zeros((1, 2)), np.zeros((1, 2))
        core.extremum_bwd(a, b, sign, g, ga, gb)
        assert ga[0, 0] == 1.0 and gb[0, 0] == 0.0   # the tie: to a
    with ppl.Model("clip_bounds") as m:
        x = m.input("x", 1)
        s = ppl.param("s", 1, 1.0)
        m.cost("c", ppl.total(ppl.clip(s * x, -1.0, 1.0)))
    _, grad = m.compile(dtype=np.float64).grad({"x": np.array([[1.0], [-1.0], [2.0], [0.5]])})
    assert abs(grad["s"][0] - (1.0 - 1.0 + 0.0 + 0.5) / 4) < 1e-12   # x = +-1 at the bounds pass; 2 is clipped


def test_nan_stays_nan():
    from ppl.kernels.cpu import core
    a, b = np.array([[np.nan, 1.0]]), np.array([[0.0, np.nan]])
    for sign in (1.0, -1.0):   # minimum, maximum
        out, ga, gb = np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2))
        core.extremum_fwd(a, b, sign, out)
        core.extremum_bwd(a, b, sign, np.ones((1, 2)), ga, gb)
        assert np.isnan(out).all() and np.isnan(ga).all() and np.isnan(gb).all()


def test_errors_name_the_problem():
    with ppl.Model("extrema_bad") as m:
        x = m.input("x", 2)
        with pytest.raises(ppl.ModelError, match="at least one node"):
            ppl.minimum(1.0, 2.0)
        with pytest.raises(ppl.ModelError, match="lo = 2.0 is above hi = 1.0"):
            ppl.clip(x, 2.0, 1.0)
        with pytest.raises(ppl.ModelError, match=r"widths must agree"):
            ppl.maximum(x, ppl.const(0.0, 3))
        with pytest.raises(ppl.ModelError, match="is nan"):
            ppl.maximum(x, float("nan"))
