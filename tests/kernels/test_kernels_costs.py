"""The closed-form KL terms and cost heads (kernels/families/costs.py) against oracles: each
backward kernel against central finite differences of its forward, with accumulation and
skipping (tests/kernel_cases.py's `check_vjp`), float32 against float64, the KL terms
against numerical integration and the heads against SciPy."""
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, special, stats

from ppl.kernels.cpu import core as cpu
from ppl.kernels.families import costs

from kernel_cases import D, K, M, R, _pos, _rows_out, check_float32, check_vjp


def _kl_std():
    def inputs(rng):
        return {"mu": rng.normal(size=(R, D)), "sigma": _pos(rng, R, D)}

    def fwd(i):
        out = _rows_out(i["mu"])
        cpu.gaussian_kl_std(i["mu"], i["sigma"], out)
        return out

    def bwd(i, grow, g):
        cpu.gaussian_kl_std_bwd(i["mu"], i["sigma"], grow, g["mu"], g["sigma"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["mu", "sigma"])


def _kl():
    def inputs(rng):
        return {"m1": rng.normal(size=(R, D)), "s1": _pos(rng, R, D),
                "m2": rng.normal(size=(R, D)), "s2": _pos(rng, R, D)}

    def fwd(i):
        out = _rows_out(i["m1"])
        cpu.gaussian_kl(i["m1"], i["s1"], i["m2"], i["s2"], out)
        return out

    def bwd(i, grow, g):
        cpu.gaussian_kl_bwd(i["m1"], i["s1"], i["m2"], i["s2"], grow, g["m1"], g["s1"], g["m2"], g["s2"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["m1", "s1", "m2", "s2"])


def _bern_nll():
    def inputs(rng):
        return {"a": rng.normal(scale=2, size=(R, D)), "t": rng.uniform(size=(R, D))}

    def fwd(i):
        out = _rows_out(i["a"])
        cpu.bernoulli_nll(i["a"], i["t"], out)
        return out

    def bwd(i, grow, g):
        cpu.bernoulli_nll_bwd(i["a"], i["t"], grow, g["a"], g["t"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "t"])


def _gauss_nll():
    def inputs(rng):
        return {"mu": rng.normal(size=(R, D)), "sigma": _pos(rng, R, D), "t": rng.normal(size=(R, D))}

    def fwd(i):
        out = _rows_out(i["mu"])
        cpu.gaussian_nll(i["mu"], i["sigma"], i["t"], out)
        return out

    def bwd(i, grow, g):
        cpu.gaussian_nll_bwd(i["mu"], i["sigma"], i["t"], grow, g["mu"], g["sigma"], g["t"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["mu", "sigma", "t"])


def _xent():
    def inputs(rng):
        return {"a": rng.normal(scale=2, size=(R, D)), "t": rng.uniform(size=(R, D))}

    def fwd(i):
        out = _rows_out(i["a"])
        cpu.softmax_xent(i["a"], i["t"], K, out)
        return out

    def bwd(i, grow, g):
        cpu.softmax_xent_bwd(i["a"], i["t"], K, grow, g["a"], g["t"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["a", "t"])


def _nce():
    def inputs(rng):
        return {"sd": rng.normal(size=(R, 1)), "sn": rng.normal(size=(R, M)),
                "kd": rng.normal(size=(R, 1)), "kn": rng.normal(size=(R, M))}

    def fwd(i):
        out = _rows_out(i["sd"])
        cpu.nce_logistic(i["sd"], i["sn"], i["kd"], i["kn"], out)
        return out

    def bwd(i, grow, g):
        cpu.nce_logistic_bwd(i["sd"], i["sn"], i["kd"], i["kn"], grow, g["sd"], g["sn"])

    return dict(inputs=inputs, fwd=fwd, bwd=bwd, wrt=["sd", "sn"])


COSTS = {
    "gaussian_kl_std": _kl_std(),
    "gaussian_kl": _kl(),
    "bernoulli_nll": _bern_nll(),
    "gaussian_nll": _gauss_nll(),
    "softmax_xent": _xent(),
    "nce_logistic": _nce(),
}


@pytest.mark.parametrize("name", list(COSTS))
def test_backward_matches_finite_differences(name):
    check_vjp(COSTS[name])


@pytest.mark.parametrize("name", list(COSTS))
def test_float32_matches_float64(name):
    check_float32(COSTS[name])


def test_the_step_finds_the_family():
    """cpu/core.py re-exports the family's kernels (the step calls them as core.<name>)."""
    for name in costs.PARITY:
        assert getattr(cpu, name) is getattr(costs, name)


def _kl_quad(m1, s1, m2, s2):
    f = lambda z: stats.norm.pdf(z, m1, s1) * (stats.norm.logpdf(z, m1, s1) - stats.norm.logpdf(z, m2, s2))
    return integrate.quad(f, m1 - 20 * s1, m1 + 20 * s1, epsabs=1e-13, epsrel=1e-12)[0]


def test_gaussian_kl_matches_numerical_integration():
    rng = np.random.default_rng(10)
    m1, s1 = rng.normal(size=(2, 3)), _pos(rng, 2, 3)
    m2, s2 = rng.normal(size=(2, 3)), _pos(rng, 2, 3)
    out = np.empty(2)
    cpu.gaussian_kl(m1, s1, m2, s2, out)
    ref = [sum(_kl_quad(m1[r, j], s1[r, j], m2[r, j], s2[r, j]) for j in range(3)) for r in range(2)]
    assert_allclose(out, ref, rtol=1e-8)
    cpu.gaussian_kl_std(m1, s1, out)
    ref = [sum(_kl_quad(m1[r, j], s1[r, j], 0.0, 1.0) for j in range(3)) for r in range(2)]
    assert_allclose(out, ref, rtol=1e-8)


def test_bernoulli_nll_and_nce_forward():
    rng = np.random.default_rng(11)
    a, t = rng.normal(scale=3, size=(R, D)), rng.integers(0, 2, size=(R, D)).astype(float)
    out = np.empty(R)
    cpu.bernoulli_nll(a, t, out)
    assert_allclose(out, -stats.bernoulli.logpmf(t, special.expit(a)).sum(1), rtol=1e-12)
    sd, sn = rng.normal(size=(R, 1)), rng.normal(size=(R, M))
    kd, kn = rng.normal(size=(R, 1)), rng.normal(size=(R, M))
    cpu.nce_logistic(sd, sn, kd, kn, out)
    ref = -special.log_expit(sd - kd).sum(1) - special.log_expit(-(sn - kn)).sum(1)
    assert_allclose(out, ref, rtol=1e-12)
