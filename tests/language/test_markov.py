"""Discrete latents summed out (m.latent(..., guide="enumerate"), ppl/language/markov.py).

Oracles: the forward algorithm of a hidden Markov model written in NumPy (scipy's logsumexp),
log p(x) of a mixture summed by hand, and their gradients by fourth-order central differences
(oracles.fd_grad): the step's value and gradient agree to float64 rounding, not to a statistical
tolerance. A switching model (a continuous latent drawn by its guide beside the summed state) is
checked for unbiasedness against its ELBO computed by Gauss-Hermite quadrature over the guide's
draws (the integrand is smooth: 16 nodes per step give it to ~1e-10) and central differences, with
tests/stats.py's projection ratio: the test of the test requires the estimates scaled by 1.05 and
0.95 to fail, so the check detects a 5% bias.
"""
import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

import ppl
from ppl import ModelError
from ppl.language import dist

import stats
from oracles import fd_grad

T, S, M, N = 50, 3, 4, 200


def hmm(name="hmm", T=T):
    """The issue's HMM: 3 states, 4 symbols, the initial state's logits the transition's bias (the
    issue's spelling: without classes=, a Categorical is one group of its logits' width)."""
    with ppl.Model(name) as m:
        x = m.input("x", T * M)

        def step(z_prev, x_t):
            z = m.latent("z", dist.Categorical(logits=ppl.Affine(z_prev, S, name="trans")), guide="enumerate")
            m.observe("sym", dist.Categorical(logits=ppl.Affine(z, M, name="emit")), x_t)
            return z, None
        ppl.scan(step, ppl.const(0.0, S), xs=x, length=T)
    return m


def hmm_nll(P, X, T=T):
    """-log p(x) per row by the forward algorithm."""
    A = log_softmax(P["trans.W"] + P["trans.b"], axis=1)
    E = log_softmax(P["emit.W"] + P["emit.b"], axis=1)
    xs = X.reshape(len(X), T, M).argmax(-1)
    la = log_softmax(P["trans.b"])[None, :] + E[:, xs[:, 0]].T
    for t in range(1, T):
        la = logsumexp(la[:, :, None] + A[None], axis=1) + E[:, xs[:, t]].T
    return -logsumexp(la, axis=1)


def simulate(rng, A, E, pi, n, T=T):
    X = np.zeros((n, T * M))
    z = rng.choice(S, n, p=pi)
    for t in range(T):
        if t:
            z = (rng.random(n)[:, None] > np.cumsum(A[z], axis=1)).sum(1)
        x = (rng.random(n)[:, None] > np.cumsum(E[z], axis=1)).sum(1)
        X[np.arange(n), t * M + x] = 1.0
    return X


def set_params(prog, rng, scale=1.0):
    P = {}
    for k in prog.params:
        P[k] = rng.normal(0.0, scale, np.shape(prog.params[k]))
        prog.params[k][...] = P[k]
    return P


def test_hmm_log_marginal_and_gradient_are_the_forward_algorithms():
    """The acceptance HMM (T = 50, 200 sequences, float64): the loss is the mean -log p(x) of the
    forward algorithm to 1e-12 relative, its gradient equal to central differences of it to 1e-7."""
    rng = np.random.default_rng(0)
    X = simulate(rng, np.full((S, S), 1 / S), np.full((S, M), 1 / M), np.full(S, 1 / S), N)
    prog = hmm().compile(dtype=np.float64)
    P = set_params(prog, rng)
    loss, g = prog.grad({"x": X})
    ref = hmm_nll(P, X).mean()
    assert abs(loss - ref) <= 1e-12 * abs(ref), (loss, ref)
    num = fd_grad(lambda Q: hmm_nll(Q, X).mean(), {k: v.copy() for k, v in P.items()})
    for k in P:
        err = np.abs(g[k] - num[k]).max() / np.abs(num[k]).max()
        assert err <= 1e-7, (k, err)
    text = prog.explain()
    assert "'z' is summed out over its 3 values by the forward algorithm" in text and "sum_z" in text


def test_hmm_fit_recovers_the_transition_and_emission_matrices():
    """Simulated data (200 sequences of 50 steps): Adam on the exact -log p(x) recovers both
    matrices within 0.05, states matched by the permutation that fits the emissions best."""
    A = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.15, 0.15, 0.7]])
    E = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    X = simulate(np.random.default_rng(0), A, E, np.array([0.5, 0.3, 0.2]), N)
    prog = hmm().compile()   # the guide's model: one compile
    ppl.fit(prog, {"x": X}, ppl.optim.Adam(0.1), steps=250, batch_size=N, progress=False, seed=0)
    P = {k: np.asarray(v, dtype=np.float64) for k, v in prog.params.items()}
    Ah = np.exp(log_softmax(P["trans.W"] + P["trans.b"], axis=1))
    Eh = np.exp(log_softmax(P["emit.W"] + P["emit.b"], axis=1))
    p = list(min(itertools.permutations(range(S)), key=lambda q: np.abs(Eh[list(q)] - E).max()))
    assert np.abs(Eh[p] - E).max() <= 0.05, Eh[p]
    assert np.abs(Ah[np.ix_(p, p)] - A).max() <= 0.05, Ah[np.ix_(p, p)]


def ar_chain(T, U=1):
    """Another chain: U Bernoulli units (2^U joint states), the initial state a data input, and a
    Normal emission that reads the state and the state before it."""
    with ppl.Model(f"ar_chain{U}") as m:
        x = m.input("x", T)
        z0 = m.input("z0", U)

        def step(z_prev, x_t):
            z = m.latent("z", dist.Bernoulli(logits=ppl.Affine(z_prev, U, name="trans")), guide="enumerate")
            loc = ppl.Affine(ppl.concat([z, z_prev]), 1, name="emit")
            m.observe("obs", dist.Normal(loc, ppl.softplus(ppl.param("noise", 1, 0.3))), x_t)
            return z, None
        ppl.scan(step, z0, xs=x, length=T)
    return m


def ar_chain_nll(P, X, Z0, T):
    U = Z0.shape[1]
    V = np.array(list(itertools.product([0.0, 1.0], repeat=U)))          # the 2^U joint values
    sd = np.logaddexp(0.0, P["noise"][0])

    def logp_z(prev):   # (rows, 4): log p(z = v | z_prev = prev)
        a = prev @ P["trans.W"] + P["trans.b"]
        return (V[None] * a[:, None] - np.logaddexp(0.0, a)[:, None]).sum(-1)

    def logp_x(prev, t):   # (rows, 4)
        loc = np.concatenate([np.repeat(V[None], len(prev), 0), np.repeat(prev[:, None], len(V), 1)], -1) @ P["emit.W"]
        loc = loc[..., 0] + P["emit.b"][0]
        return -0.5 * ((X[:, t:t + 1] - loc) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)

    la = logp_z(Z0) + logp_x(Z0, 0)
    for t in range(1, T):
        step = np.stack([logp_z(np.repeat(V[j][None], len(X), 0)) + logp_x(np.repeat(V[j][None], len(X), 0), t)
                         for j in range(len(V))], 1)    # (rows, j, k)
        la = logsumexp(la[:, :, None] + step, axis=1)
    return -logsumexp(la, axis=1)


def test_a_factor_that_reads_the_state_alone_is_copied_once_per_value():
    """The summed graph (markov.sum_out): the HMM's emission reads z alone, so its affine is copied
    once per value (3), and the transition once per state before it (3 and the init's); the AR
    chain's emission reads z and the state before it, so it is copied per pair (3 x 2). Test of
    the test: where every node below z counted as reading the state before it (the rule before
    this one), the HMM's emission was copied per pair, 12 copies, and this fails. The values and
    gradients of both chains are the forward algorithms' (the tests above and below)."""
    from ppl.language.markov import sum_out

    def copies(m, prefix):
        return sorted(n.name for n in sum_out(m).order if n.kind == "affine" and n.name.startswith(prefix))
    assert copies(hmm(), "emit") == ["emit_v0", "emit_v1", "emit_v2"]
    assert copies(hmm(), "trans") == ["trans_s0", "trans_s1", "trans_s2", "trans_s3"]
    assert len(copies(ar_chain(5), "emit")) == 6 and copies(ar_chain(5), "emit")[0] == "emit_s0v0"
    # every copy at a state reads constants (the values) and parameters only: computed once,
    # before the loop (scan.Loop.hoists), the HMM's emission log-softmax too; what reads the step's
    # data stays in the body (the HMM's: the one-hot symbol's dot products with the log-softmax
    # rows of its values, one node; the AR chain's: its law)
    for m, reads_x in ((hmm(), "dots"), (ar_chain(5), "law_logp")):
        body = sum_out(m).loops[0].body
        assert not [n.name for n in body if n.kind in ("affine", "logsumexp")], [n.name for n in body]
        assert [n for n in body if n.kind == reads_x and any(i.kind == "scan_x" for i in n.inputs)]


def test_a_factor_that_reads_the_state_alone_is_added_after_the_sum_over_the_state_before():
    """log sum_j exp(alpha_j + B_jk + e_k) = e_k + log sum_j exp(alpha_j + B_jk): the HMM's emission
    (reads z alone) is added to the step's log_matvec, once, and its B holds the transition's rows
    alone, which read the values and parameters only: computed before the loop. The AR chain's
    emission reads the state before too, so it stays in B, which reads the step's data: in the
    loop. Test of the test: with every factor in B (the rule before this one), the HMM's B is in
    the loop and this fails. The values and gradients are the forward algorithms' (the tests
    above and below)."""
    from ppl.language.markov import sum_out

    for m, hoisted in ((hmm(), True), (ar_chain(5), False)):
        g = sum_out(m)
        mv = next(n for n in g.order if n.kind == "log_matvec")
        assert ("loop" not in mv.inputs[1].attrs) is hoisted, (m.name, mv.inputs[1].name)
        readers = [n for n in g.order if mv in n.inputs]
        assert [n.kind for n in readers] == (["add"] if hoisted else ["concat"]), [n.name for n in readers]
        if hoisted:   # the emission's row: one product of the symbol with its hoisted log-softmax rows
            row = next(i for i in readers[0].inputs if i is not mv)
            assert row.kind == "dots" and row.inputs[0].kind == "scan_x" and "loop" not in row.inputs[1].attrs
            assert not [n.name for n in g.loops[0].body if n.kind in ("mul", "rowsum")]


def test_another_chain_bernoulli_unit_data_init_and_an_emission_of_two_states(U=1):
    T_, n = 12, 16
    rng = np.random.default_rng(3)
    X, Z0 = rng.normal(0, 1, (n, T_)), (rng.random((n, U)) < 0.5).astype(float)
    prog = ar_chain(T_, U).compile(dtype=np.float64)
    P = set_params(prog, rng)
    loss, g = prog.grad({"x": X, "z0": Z0})
    ref = ar_chain_nll(P, X, Z0, T_).mean()
    assert abs(loss - ref) <= 1e-12 * abs(ref), (loss, ref)
    num = fd_grad(lambda Q: ar_chain_nll(Q, X, Z0, T_).mean(), {k: v.copy() for k, v in P.items()})
    for k in P:
        assert np.abs(g[k] - num[k]).max() <= 1e-7 * np.abs(num[k]).max(), k


def mixture():
    with ppl.Model("mixture") as m:
        x = m.input("x", 1)
        z = m.latent("z", dist.Categorical(logits=ppl.param("w", 3), classes=3), guide="enumerate")
        m.observe("obs", dist.Normal(ppl.Affine(z, 1, name="means"), 0.7), x)
    return m


def mixture_nll(P, X):
    loc = P["means.W"][:, 0] + P["means.b"][0]
    lp = log_softmax(P["w"])[None] - 0.5 * ((X - loc[None]) / 0.7) ** 2 - np.log(0.7) - 0.5 * np.log(2 * np.pi)
    return -logsumexp(lp, axis=1)


def test_a_mixture_component_summed_out_outside_a_scan():
    """-log sum_k p(k) p(x | k) per row (the marginal likelihood, not the ELBO of a guide)."""
    rng = np.random.default_rng(5)
    X = rng.normal(0, 2, (40, 1))
    prog = mixture().compile(dtype=np.float64)
    P = set_params(prog, rng)
    loss, g = prog.grad({"x": X})
    assert abs(loss - mixture_nll(P, X).mean()) <= 1e-12 * abs(loss)
    num = fd_grad(lambda Q: mixture_nll(Q, X).mean(), {k: v.copy() for k, v in P.items()})
    for k in P:
        assert np.abs(g[k] - num[k]).max() <= 1e-7 * np.abs(num[k]).max(), k
    assert "'z' is summed out over its 3 values per row" in prog.explain()
    draws = prog.sample_prior(5, nodes=["z"])["z"]   # the declared model still draws it
    assert draws.shape == (5, 3) and np.all(draws.sum(1) == 1)
    assert prog.predict(prior=True, batch=4)["x"].shape == (4, 1)
    with pytest.raises(ModelError, match=r"depend on \['z'\], summed out .* prior=True"):
        prog.predict(X[:4])
    with pytest.raises(ModelError, match=r"\['z'\] are summed out .*sample_prior"):
        prog.sample({"x": X[:4]}, nodes=["z"])


def test_joint_values_of_several_units_summed_out():
    """Three Bernoulli units: their 8 joint values, each with its prior and likelihood."""
    with ppl.Model("units") as m:
        x = m.input("x", 1)
        z = m.latent("z", dist.Bernoulli(logits=ppl.param("a", 3)), guide="enumerate")
        m.observe("obs", dist.Normal(ppl.Affine(z, 1, name="loc"), 0.8), x)
    rng = np.random.default_rng(2)
    X = rng.normal(0, 2, (30, 1))
    prog = m.compile(dtype=np.float64)
    P = set_params(prog, rng)

    def nll(Q):
        V = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
        lp = (V * Q["a"] - np.logaddexp(0.0, Q["a"])).sum(1)[None] + _norm_lp(X, (V @ Q["loc.W"])[:, 0] + Q["loc.b"][0], 0.8)
        return -logsumexp(lp, axis=1).mean()
    loss, g = prog.grad({"x": X})
    assert abs(loss - nll(P)) <= 1e-12 * abs(loss)
    num = fd_grad(nll, {k: v.copy() for k, v in P.items()})
    for k in P:
        assert np.abs(g[k] - num[k]).max() <= 1e-7 * np.abs(num[k]).max(), k


def test_a_binomial_count_summed_out():
    """A count of a constant total: its 4 values 0..3 (scipy.stats' pmf)."""
    from scipy import stats as st
    with ppl.Model("binomial_sum") as m:
        x = m.input("x", 1)
        m.observe("obs", dist.Normal(ppl.Affine(m.latent("z", dist.Binomial(3, logits=ppl.param("a", 1, 0.2)),
                                                         guide="enumerate"), 1, name="loc"), 0.8), x)
    X = np.random.default_rng(0).normal(1, 2, (20, 1))
    prog = m.compile(dtype=np.float64)
    P = {k: np.array(v, dtype=np.float64) for k, v in prog.params.items()}
    ks = np.arange(4)
    lp = (st.binom.logpmf(ks, 3, 1 / (1 + np.exp(-P["a"][0])))[None]
          + st.norm.logpdf(X, ks[None] * P["loc.W"][0, 0] + P["loc.b"][0], 0.8))
    assert abs(prog.loss({"x": X}) + logsumexp(lp, axis=1).mean()) <= 1e-12 * abs(prog.loss({"x": X}))


# --------------------------------------------------------------------------- a switching model
TS, NS = 3, 6


def switching():
    """A 2-state chain choosing the dynamics of a continuous y (its guide amortised by x_t)."""
    with ppl.Model("switching") as m:
        x = m.input("x", TS)

        def step(carry, x_t):
            s_prev, y_prev = carry
            s = m.latent("s", dist.Categorical(logits=ppl.Affine(s_prev, 2, name="trans"), classes=2), guide="enumerate")
            y = ppl.Normal("y", ppl.Affine(x_t, 1, name="enc"), ppl.softplus(ppl.param("qs", 1, -0.5)))
            m.latent(y, dist.Normal(y_prev * ppl.Affine(s, 1, name="coef"), ppl.softplus(ppl.Affine(s, 1, name="vol"))))
            m.observe("obs", dist.Normal(y, 0.5), x_t)
            return (s, y), None
        ppl.scan(step, (ppl.const(0.0, 2), ppl.const(0.0, 1)), xs=x, length=TS)
    return m


def _norm_lp(v, loc, sd):
    return -0.5 * ((v - loc) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def switching_loss(P, X, nodes=16):
    """-ELBO by Gauss-Hermite over the guide's draws y_t = mu_t + sigma eps_t, log p(x, y) summed
    over the 2^T state paths."""
    sp = lambda a: np.logaddexp(0.0, a)   # noqa: E731
    e, w = np.polynomial.hermite_e.hermegauss(nodes)
    E = np.array(list(itertools.product(e, repeat=TS)))
    W = np.prod(np.array(list(itertools.product(w / w.sum(), repeat=TS))), axis=1)
    sig = sp(P["qs"][0])
    coef = P["coef.W"][:, 0] + P["coef.b"][0]
    vol = sp(P["vol.W"][:, 0] + P["vol.b"][0])
    A = log_softmax(P["trans.W"] + P["trans.b"], axis=1)
    a0 = log_softmax(P["trans.b"])
    out = []
    for row in X:
        mu = row * P["enc.W"][0, 0] + P["enc.b"][0]
        Y = mu[None] + sig * E
        logq = _norm_lp(Y, mu[None], sig).sum(1)
        paths = []
        for path in itertools.product(range(2), repeat=TS):
            lp = a0[path[0]] + sum(A[path[t - 1], path[t]] for t in range(1, TS))
            prev = np.zeros(len(Y))
            for t, s in enumerate(path):
                lp = lp + _norm_lp(Y[:, t], prev * coef[s], vol[s])
                prev = Y[:, t]
            paths.append(lp)
        logp = logsumexp(np.stack(paths), axis=0) + _norm_lp(row[None], Y, 0.5).sum(1)
        out.append(-(W * (logp - logq)).sum())
    return float(np.mean(out))


def test_switching_model_gradient_is_unbiased_against_quadrature():
    rng = np.random.default_rng(7)
    X = rng.normal(0, 1, (NS, TS))
    prog = switching().compile(dtype=np.float64, seed=2)
    assert prog.choices[prog.model.nodes["y"]][0].estimator == "pathwise"
    P = set_params(prog, rng, 0.5)
    e = fd_grad(lambda Q: switching_loss(Q, X), {k: v.copy() for k, v in P.items()})
    names = sorted(P)
    stats.assert_unbiased_tuned(prog, {"x": X}, names, stats.flat(e, names), label="switching")


# --------------------------------------------------------------------------- refusals
def test_refusals_name_the_latent_and_the_fix():
    with ppl.Model("bad_support") as m:
        with pytest.raises(ModelError, match="finite support"):
            m.latent("u", dist.Normal(0.0, 1.0), guide="enumerate")
    with ppl.Model("too_many") as m:
        with pytest.raises(ModelError, match="more than 64"):
            m.latent("u", dist.Bernoulli(logits=ppl.param("a", 7)), guide="enumerate")
    with ppl.Model("drawn_after") as m:
        x = m.input("x", 1)
        z = m.latent("z", dist.Bernoulli(logits=ppl.param("a", 1)), guide="enumerate")
        h = ppl.Normal("h", z, 1.0)
        m.latent(h, dist.Normal(0.0, 1.0))
        m.observe("obs", dist.Normal(h, 1.0), x)
    with pytest.raises(ModelError, match="'h' is drawn given the summed-out latent 'z'"):
        m.compile()
    with ppl.Model("read_after") as m:
        x = m.input("x", 5)

        def step(z_prev, x_t):
            z = m.latent("z", dist.Bernoulli(logits=ppl.Affine(z_prev, 1, name="tr")), guide="enumerate")
            m.observe("obs", dist.Normal(z, 1.0), x_t)
            return z, z
        _, zs = ppl.scan(step, ppl.const(0.0, 1), xs=x)
        m.cost("c", ppl.total(zs))
    with pytest.raises(ModelError, match="output 0 .* summed out"):
        m.compile()


def test_logsumexp_op_value_gradient_and_nan():
    with ppl.Model("lse") as m:
        x = m.input("x", 4)
        m.cost("c", ppl.logsumexp(ppl.Affine(x, 3, name="a")))
    prog = m.compile(dtype=np.float64)
    rng = np.random.default_rng(0)
    X = rng.normal(0, 30, (5, 4))
    P = set_params(prog, rng)
    f = lambda Q: logsumexp(X @ Q["a.W"] + Q["a.b"], axis=1).mean()   # noqa: E731
    loss, g = prog.grad({"x": X})
    assert abs(loss - f(P)) <= 1e-12 * abs(loss)
    num = fd_grad(f, {k: v.copy() for k, v in P.items()})
    for k in P:
        assert np.abs(g[k] - num[k]).max() <= 1e-7 * np.abs(num[k]).max(), k
    prog.params["a.W"][1, 0] = np.nan   # a NaN term makes the row's value and every cotangent NaN
    loss, g = prog.grad({"x": X})
    assert np.isnan(loss) and np.isnan(g["a.b"]).all()


def test_the_guide_s_hmm_block_runs_as_written():
    """docs/guides/modelling.md's HMM block, as written (its fit shortened to 5 steps)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "modelling.md").read_text()
    block = text.split("## Discrete states summed out")[1].split("```python")[1].split("```")[0]
    block = block.replace("steps=250", "steps=5")
    scope = {"ppl": ppl, "dist": dist, "np": np}
    exec(block, scope)
    assert "'z' is summed out over its 3 values by the forward algorithm" in scope["prog"].explain()


@pytest.mark.cuda
def test_the_cuda_target_sums_the_same_chain():
    """The CUDA target (the simulator without a GPU): the same loss and gradient as the CPU's."""
    T_ = 3
    X = simulate(np.random.default_rng(0), np.full((S, S), 1 / S), np.full((S, M), 1 / M), np.full(S, 1 / S), 3, T=T_)
    cpu = hmm("hmm_cpu", T=T_).compile(dtype=np.float64)
    P = set_params(cpu, np.random.default_rng(1))
    gpu = hmm("hmm_cuda", T=T_).compile(dtype=np.float64, target="cuda")
    for k in P:
        gpu.params[k] = P[k]
    (l1, g1), (l2, g2) = cpu.grad({"x": X}), gpu.grad({"x": X})
    assert abs(l1 - hmm_nll(P, X, T=T_).mean()) <= 1e-12 * abs(l1) and abs(l2 - l1) <= 1e-12 * abs(l1)
    for k in g1:
        assert np.abs(g1[k] - g2[k]).max() <= 1e-12 * np.abs(g1[k]).max(), k
