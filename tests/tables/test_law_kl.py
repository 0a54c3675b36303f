"""Closed-form KL(q || p) between two members of one law (m.latent(z, prior, kl="analytic")):
Gamma, Beta, Dirichlet, Exponential, HalfNormal, HalfCauchy and LogNormal pairs, the op law_kl from each law's kl /
kl_bwd kernels.

Oracles: the KL by numerical integration of q log(q / p) (scipy.integrate.quad, 1e-10) for the
values (Dirichlet: on two classes it is the Beta's; on three, a Monte-Carlo mean of log q - log p
from scipy.stats.dirichlet within 4 standard errors); central differences of the closed form for
its kernel gradient, and of the step's loss at fixed noise for the whole program (float64, 1e-6
relative).
"""
import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

import exact
import ppl
from ppl import Model
from ppl.kernels.cpu import core as cpu

CASES = [(0.3, 2.0, 1.5, 0.7), (4.0, 0.5, 1.0, 1.0), (50.0, 3.0, 20.0, 1.2), (1.0, 1.0, 1.0, 1.0)]


def _quad(q, p, lo, hi):
    import warnings
    f = lambda x: q.pdf(x) * (q.logpdf(x) - p.logpdf(x))   # noqa: E731
    with warnings.catch_warnings():   # quad may warn of roundoff at its tolerance: the test's bound is 1e-7
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return integrate.quad(f, lo, hi, epsabs=1e-12, epsrel=1e-10, limit=400)[0]


@pytest.mark.parametrize("a1,b1,a2,b2", CASES)
def test_kl_values_against_integration(a1, b1, a2, b2):
    arr = lambda v: np.full((1, 1), v)   # noqa: E731
    c = np.empty(1)
    cpu.gamma_kl(arr(a1), arr(b1), arr(a2), arr(b2), c)
    q, p = sps.gamma(a1, scale=1 / b1), sps.gamma(a2, scale=1 / b2)
    assert c[0] == pytest.approx(_quad(q, p, 0, np.inf), rel=1e-7, abs=1e-9)
    cpu.beta_kl(arr(a1), arr(b1), arr(a2), arr(b2), c)
    assert c[0] == pytest.approx(_quad(sps.beta(a1, b1), sps.beta(a2, b2), 0, 1), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("law", ["gamma", "beta"])
@pytest.mark.parametrize("a1,b1,a2,b2", CASES)
def test_kl_gradients_against_central_differences(law, a1, b1, a2, b2):
    fwd, bwd = getattr(cpu, f"{law}_kl"), getattr(cpu, f"{law}_kl_bwd")
    x = np.array([a1, b1, a2, b2])

    def kl(v):
        c = np.empty(1)
        fwd(*[np.full((1, 1), t) for t in v], c)
        return c[0]

    g = [np.zeros((1, 1)) for _ in range(4)]
    bwd(*[np.full((1, 1), t) for t in x], np.ones(1), *g)
    for i in range(4):
        h = 1e-6 * max(1.0, x[i])
        up, dn = x.copy(), x.copy()
        up[i] += h
        dn[i] -= h
        assert g[i][0, 0] == pytest.approx((kl(up) - kl(dn)) / (2 * h), rel=1e-6, abs=1e-8), (law, i)


def build(law, name):
    with Model(name) as m:
        x = m.input("x", 2)
        e = ppl.Affine(x, 2, name="enc")
        z = getattr(ppl, law)("z", ppl.softplus(e) + 0.5, ppl.exp(ppl.Affine(x, 2, name="r")) + 0.5)
        prior = getattr(ppl.dist, law)(1.5, 2.0)
        m.latent(z, prior, kl="analytic")
        m.observe("y", ppl.dist.Normal(ppl.Affine(z, 2, name="dec"), 1.0), x)
    return m


@pytest.mark.parametrize("law", ["Gamma", "Beta"])
def test_analytic_kl_in_a_program(law):
    prog = build(law, f"kl_{law}").compile(dtype=np.float64)
    assert any(n.kind == "law_kl" for n in prog.model.order)
    data = {"x": np.array([[0.3, -0.2], [1.0, 0.5]])}
    parts = prog.loss_parts(data, seed=1)
    P = {k: np.asarray(v, np.float64) for k, v in prog.params.items()}
    e = data["x"] @ P["enc.W"] + P["enc.b"]
    a = np.logaddexp(0, e) + 0.5
    b = np.exp(data["x"] @ P["r.W"] + P["r.b"]) + 0.5
    if law == "Gamma":
        want = [sum(_quad(sps.gamma(a[i, j], scale=1 / b[i, j]), sps.gamma(1.5, scale=0.5), 0, np.inf)
                    for j in range(2)) for i in range(2)]
    else:
        want = [sum(_quad(sps.beta(a[i, j], b[i, j]), sps.beta(1.5, 2.0), 0, 1) for j in range(2)) for i in range(2)]
    kl_part = next(v for k, v in parts.items() if k.startswith("kl_"))
    assert kl_part == pytest.approx(np.mean(want), rel=1e-7)
    exact.assert_step_gradient(prog, data)


def _dir_kl(alpha, beta):
    c = np.empty(1)
    cpu.dirichlet_kl(np.array([alpha], float), np.array([beta], float), len(alpha), c)
    return c[0]


def test_dirichlet_kl_two_classes_is_the_beta_kl():
    """Dirichlet(a, b) on two classes is Beta(a, b) of the first coordinate: the oracle is quad."""
    for a1, b1, a2, b2 in CASES:
        want = _quad(sps.beta(a1, b1), sps.beta(a2, b2), 0, 1)
        assert _dir_kl([a1, b1], [a2, b2]) == pytest.approx(want, rel=1e-7, abs=1e-9)


def test_dirichlet_kl_three_classes_against_monte_carlo():
    """E_q[log q - log p] over 400,000 draws of q, within 4 standard errors."""
    alpha, beta = np.array([0.7, 2.0, 5.0]), np.array([1.5, 1.0, 3.0])
    x = np.random.default_rng(0).dirichlet(alpha, 400_000)
    d = sps.dirichlet.logpdf(x.T, alpha) - sps.dirichlet.logpdf(x.T, beta)
    assert abs(_dir_kl(alpha, beta) - d.mean()) < 4 * d.std() / np.sqrt(d.size)


def test_dirichlet_kl_gradients_against_central_differences():
    alpha, beta = np.array([[0.7, 2.0, 5.0, 1.1, 0.4, 3.0]]), np.array([[1.5, 1.0, 3.0, 2.0, 2.0, 0.9]])

    def kl(a, b):
        c = np.empty(1)
        cpu.dirichlet_kl(a, b, 3, c)
        return c[0]

    ga, gb = np.zeros_like(alpha), np.zeros_like(beta)
    cpu.dirichlet_kl_bwd(alpha, beta, 3, np.ones(1), ga, gb)
    for which, g in ((0, ga), (1, gb)):
        for k in range(6):
            h = 1e-6 * max(1.0, (alpha, beta)[which][0, k])
            up = [alpha.copy(), beta.copy()]
            dn = [alpha.copy(), beta.copy()]
            up[which][0, k] += h
            dn[which][0, k] -= h
            assert g[0, k] == pytest.approx((kl(*up) - kl(*dn)) / (2 * h), rel=1e-6, abs=1e-8), (which, k)


def test_analytic_dirichlet_kl_in_a_program():
    with Model("kl_dirichlet") as m:
        x = m.input("x", 2)
        z = ppl.Dirichlet("z", ppl.softplus(ppl.Affine(x, 6, name="enc")) + 0.5, classes=3)
        m.latent(z, ppl.dist.Dirichlet(1.5, classes=3), kl="analytic")
        m.observe("y", ppl.dist.Normal(ppl.Affine(z, 2, name="dec"), 1.0), x)
    prog = m.compile(dtype=np.float64)
    assert any(n.kind == "law_kl" for n in prog.model.order)
    exact.assert_step_gradient(prog, {"x": np.array([[0.3, -0.2], [1.0, 0.5]])})


# the positive laws' pairs: (kernel, its parameters (q's then p's), scipy's q and p from them)
POSITIVE = {
    "exponential": (lambda a, b: (sps.expon(scale=1 / a), sps.expon(scale=1 / b)), [(0.3, 2.0), (4.0, 0.5), (1.0, 1.0)]),
    "half_normal": (lambda a, b: (sps.halfnorm(scale=a), sps.halfnorm(scale=b)), [(0.3, 2.0), (4.0, 0.5), (1.0, 1.0)]),
    "half_cauchy": (lambda a, b: (sps.halfcauchy(scale=a), sps.halfcauchy(scale=b)), [(0.3, 2.0), (4.0, 0.5)]),
    "lognormal": (lambda m1, s1, m2, s2: (sps.lognorm(s1, scale=np.exp(m1)), sps.lognorm(s2, scale=np.exp(m2))),
                  [(0.2, 0.5, -0.3, 1.2), (1.0, 2.0, 0.0, 0.7), (0.0, 1.0, 0.0, 1.0)]),
}


@pytest.mark.parametrize("law", sorted(POSITIVE))
def test_positive_laws_kl_values_and_gradients(law):
    """KL(q || p) of Exponential, HalfNormal, HalfCauchy and LogNormal pairs against quad of q
    log(q / p) (1e-7), and its kernel gradient against central differences of the kernel (1e-6)."""
    dists, cases = POSITIVE[law]
    fwd, bwd = getattr(cpu, f"{law}_kl"), getattr(cpu, f"{law}_kl_bwd")

    def kl(v):
        c = np.empty(1)
        fwd(*[np.full((1, 1), t) for t in v], c)
        return c[0]

    for x in cases:
        x = np.array(x, float)
        q, p = dists(*x)
        assert kl(x) == pytest.approx(_quad(q, p, 0, np.inf), rel=1e-7, abs=1e-9), (law, x)
        g = [np.zeros((1, 1)) for _ in x]
        bwd(*[np.full((1, 1), t) for t in x], np.ones(1), *g)
        for i in range(len(x)):
            h = 1e-6 * max(1.0, abs(x[i]))
            up, dn = x.copy(), x.copy()
            up[i] += h
            dn[i] -= h
            assert g[i][0, 0] == pytest.approx((kl(up) - kl(dn)) / (2 * h), rel=1e-6, abs=1e-8), (law, x, i)


def test_lognormal_analytic_kl_in_a_program():
    """A LogNormal guide against a LogNormal prior with kl="analytic": the KL term is the closed
    form at the guide's parameters and the step's gradient matches central differences."""
    with Model("kl_lognormal") as m:
        x = m.input("x", 2)
        z = ppl.LogNormal("z", ppl.Affine(x, 2, name="enc"), ppl.softplus(ppl.Affine(x, 2, name="s")) + 0.2)
        m.latent(z, ppl.dist.LogNormal(0.5, 1.5), kl="analytic")
        m.observe("y", ppl.dist.Normal(ppl.Affine(z, 2, name="dec"), 1.0), x)
    prog = m.compile(dtype=np.float64)
    data = {"x": np.array([[0.3, -0.2], [1.0, 0.5]])}
    P = {k: np.asarray(v, np.float64) for k, v in prog.params.items()}
    loc = data["x"] @ P["enc.W"] + P["enc.b"]
    scale = np.logaddexp(0, data["x"] @ P["s.W"] + P["s.b"]) + 0.2
    want = np.log(1.5 / scale) + (scale ** 2 + (loc - 0.5) ** 2) / (2 * 1.5 ** 2) - 0.5
    assert prog.loss_parts(data, seed=1)["kl_z"] == pytest.approx(want.sum(1).mean(), rel=1e-10)
    exact.assert_step_gradient(prog, data)
