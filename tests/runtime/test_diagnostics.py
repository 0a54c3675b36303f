"""ppl.diagnostics: side-by-side gradient statistics with bias against enumeration."""
import numpy as np

import ppl
from ppl import Affine, Bernoulli, Model
from ppl.runtime import diagnostics as D

X = np.array([[1.0, 0, 1, 1], [0, 1, 1, 0]])


def model():
    with Model("diag") as m:
        x = m.input("x", 4)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        m.cost("f", ppl.bernoulli_nll(Affine(h, 4, name="dec"), target=x))
    return m


def test_stats_side_by_side():
    """Oracle: the exact gradient by enumeration (ppl.diagnostics.exact_gradient). The unbiased
    estimators' projection ratio is within 4 SE of 1 and every entry within 4.5 SE; the SE is
    small enough that a 5% bias is detected (|1.05 proj - 1| > 4 SE must hold). The draws are
    independent (the estimator state is reset before each): score's moving-average baseline is
    first trained for 300 steps, so its projection SE is ~0.5% (with the baseline at its
    initial zero, ~1.8% at 3,000 draws: a 5% bias would go unseen)."""
    stats = D.gradient_stats(model(), {"x": X}, ["score", "disarm", "straight_through", "enumerate"],
                            draws=3000, warmup=300)
    by = {s.estimator: s for s in stats}
    assert by["enumerate"].total_variance < 1e-20            # exact: no variance
    assert by["enumerate"].max_abs_bias_in_se < 1e-3 or np.isclose(
        max(np.abs(b).max() for b in by["enumerate"].bias.values()), 0, atol=1e-10)
    assert abs(by["enumerate"].proj - 1) < 1e-9
    for name in ("score", "disarm"):                          # unbiased, with the power to see 5%
        st = by[name]
        assert st.max_abs_bias_in_se < 4.5, (name, st.max_abs_bias_in_se)
        assert abs(st.proj - 1) <= 4 * st.proj_se, (name, st.proj, st.proj_se)
        for f in (1.05, 0.95):
            assert abs(f * st.proj - 1) > 4 * f * st.proj_se, (name, "cannot see a 5% bias", st.proj_se)
    assert by["straight_through"].max_abs_bias_in_se > 4      # biased, and seen to be
    assert by["disarm"].total_variance < by["score"].total_variance
    text = D.table(stats)
    assert text.count("\n") == len(stats) + 1 and "disarm" in text


def test_stats_at_a_trained_programs_parameters():
    """gradient_stats(..., params=prog) measures at that program's model parameters (a trained
    one's), not at the first compile's: enumeration's mean is the exact gradient there (the
    oracle, exact_gradient at those parameters) and differs from the one at initialisation; a
    params dict missing a parameter is an error naming it."""
    m = model()
    prog = m.compile(estimators="disarm", dtype=np.float64, seed=0)
    ppl.fit(prog, {"x": X}, ppl.optim.Adam(0.05), steps=50, batch_size=2, progress=False)
    trained = {k: prog.params[k].copy() for k in prog.model_param_names()}
    at_init = D.gradient_stats(m, {"x": X}, ["enumerate"], draws=3, warm=0)[0].mean
    (st,) = D.gradient_stats(m, {"x": X}, ["enumerate"], draws=3, warm=0, params=prog)
    _, exact = D.exact_gradient(m, {"x": X}, params=trained, dtype=np.float64)
    for k in exact:
        np.testing.assert_allclose(st.mean[k], exact[k], rtol=1e-9, atol=1e-12)
    assert any(not np.allclose(st.mean[k], at_init[k]) for k in exact)
    with np.testing.assert_raises_regex(ppl.ModelError, r"params has no \['enc.b', 'dec.W', 'dec.b'\]"):
        D.gradient_stats(m, {"x": X}, ["enumerate"], draws=3, warm=0, params={"enc.W": trained["enc.W"]})
