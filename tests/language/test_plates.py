"""Plates and global latents (`with m.plate("data", size=N)`, ppl/dsl.py; graph.scopes; the
lowering: a global node's noise drawn for data row 0 and shared, a per-row cost weighted N).

- Bayesian linear regression, a global Normal weight vector under a mean-field Normal guide
  (pathwise), trained by ppl.fit on minibatches of 20 of N = 200 rows: the guide's means and
  standard deviations within 3 Monte-Carlo standard errors (12 runs, fixed seeds) of the exact
  conjugate posterior (orthogonal columns: the posterior factorises, so the mean-field optimum
  is the exact posterior). Its gradient is unbiased against the closed-form ELBO's.
- A global Bernoulli under DisARM and a global Categorical under score: the gradient of every
  parameter unbiased (tests/stats.py: projection ratio within 4 SE of 1, and the estimates
  scaled by 1.05 / 0.95 must fail: a 5% bias is detected) against an exact oracle written here
  (the global node enumerated, each row's local node enumerated, central differences in
  float64), alone and under a per-row layer and latent; an enumerated global node is exact.
  (The ELBO's expectation is the same whether rows share a draw or not -- it is linear in the
  per-row terms -- so sharing is tested on the draws themselves, below.)
- What a plate changes: one global draw per sample shared by every row; the loss is N / batch
  times the per-row costs plus the global terms once; the errors of bad plates name the fix.
"""
import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

import ppl
from ppl import Model, ModelError
from ppl.language import dist
from stats import assert_unbiased, draws

N_BLR, D_BLR, SIG = 200, 3, 0.5


def blr_data():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(N_BLR, D_BLR)))
    X = Q * np.sqrt(N_BLR) * np.array([0.3, 0.2, 0.1])      # orthogonal columns
    y = (X @ np.array([1.0, -2.0, 0.5]) + SIG * rng.normal(size=N_BLR))[:, None]
    return X, y


def blr_model(size=N_BLR):
    with Model("blr") as m:
        x, y = m.input("x", D_BLR), m.input("y", 1)
        w = ppl.Normal("w", ppl.param("w_loc", D_BLR), ppl.softplus(ppl.param("w_s", D_BLR, init=-2.0)))
        m.latent(w, dist.Normal(0.0, 1.0))
        with m.plate("data", size=size):
            m.observe("lik", dist.Normal(ppl.rowdot(x, w), SIG), y)
    return m


def blr_elbo(loc, ws, X, y):
    """The closed-form -ELBO of the batch (X, y) as the step estimates it: N / batch per row."""
    s = np.logaddexp(0, ws)
    nll = 0.5 / SIG ** 2 * ((y[:, 0] - X @ loc) ** 2 + (X ** 2) @ (s ** 2)) + np.log(SIG) + 0.5 * np.log(2 * np.pi)
    return -np.log(s).sum() - 0.5 * len(s) + 0.5 * (loc ** 2 + s ** 2).sum() + N_BLR / len(X) * nll.sum()


def test_bayesian_linear_regression_matches_the_conjugate_posterior():
    X, y = blr_data()
    P = np.eye(D_BLR) + X.T @ X / SIG ** 2
    exact = np.concatenate([np.linalg.solve(P, X.T @ y[:, 0] / SIG ** 2), np.sqrt(np.diag(np.linalg.inv(P)))])
    prog = blr_model().compile(dtype=np.float64)
    data = {"x": X, "y": y}
    runs = []
    for r in range(12):
        prog.params["w_loc"][:], prog.params["w_s"][:] = 0.0, -2.0
        for lr, seed in ((0.05, r), (0.01, 100 + r)):
            ppl.fit(prog, data, ppl.optim.Adam(lr), steps=1000, batch_size=20, seed=seed, progress=False)
        opt = ppl.optim.Adam(0.002)
        ppl.fit(prog, data, opt, steps=1000, batch_size=20, seed=200 + r, progress=False)
        snaps = []   # Polyak averages of the last 3000 steps
        for c in range(30):
            ppl.fit(prog, data, opt, steps=100, batch_size=20, seed=1000 * r + c + 1, progress=False)
            snaps.append(np.concatenate([prog.params["w_loc"], np.logaddexp(0, prog.params["w_s"])]))
        runs.append(np.mean(snaps, 0))
    runs = np.array(runs)
    est, se = runs.mean(0), runs.std(0, ddof=1) / np.sqrt(len(runs))
    z = (est - exact) / se
    print("exact posterior (means, sds)", np.round(exact, 4), "\nfitted", np.round(est, 4),
          "\nMC SE", np.round(se, 5), "\nz", np.round(z, 2))
    assert np.all(np.abs(z) <= 3), z
    assert np.all(se < 0.02 * np.abs(exact))   # the test has resolution: SEs under 2% of each value


def test_bayesian_linear_regression_gradient_is_unbiased_on_a_minibatch():
    X, y = blr_data()
    X, y = X[:20], y[:20]
    prog = blr_model().compile(dtype=np.float64)
    rng = np.random.default_rng(5)
    loc, ws = rng.normal(size=D_BLR), rng.normal(size=D_BLR) - 1
    prog.params["w_loc"][:], prog.params["w_s"][:] = loc, ws
    e = _central(lambda p: blr_elbo(p["w_loc"], p["w_s"], X, y), {"w_loc": loc, "w_s": ws})
    G = draws(prog, {"x": X, "y": y}, ["w_loc", "w_s"], 1000)
    print(assert_unbiased(G, np.concatenate([e["w_loc"], e["w_s"]]), "blr pathwise"))
    losses = [prog.loss({"x": X, "y": y}, seed=s) for s in range(400)]
    assert abs(np.mean(losses) - blr_elbo(loc, ws, X, y)) < 4 * np.std(losses) / 20


# ------------------------------------------------------------------ global discrete nodes
N_DATA, BATCH = 20, 6


def discrete_model(kind, per_row):
    with Model(f"global_{kind}_{int(per_row)}") as m:
        x = m.input("x", 1)
        if kind == "bernoulli":
            z = ppl.Bernoulli("z", logits=ppl.param("qz", 2, init=[0.3, -0.5]))
            m.latent(z, dist.Bernoulli(logits=ppl.param("pz", 2, init=[-2.0, 2.0])))
        else:
            z = ppl.Categorical("z", logits=ppl.param("qz", 3, init=[0.3, -0.5, 0.1]), classes=3)
            m.latent(z, dist.Categorical(logits=ppl.param("pz", 3, init=[-2.0, 2.0, 0.0]), classes=3))
        with m.plate("data", size=N_DATA):
            if per_row:   # a per-row layer reading z and the row, and a per-row latent below it
                f = ppl.tanh(ppl.Affine(ppl.concat([z, x]), 2, name="enc"))
                h = ppl.Bernoulli("h", logits=ppl.Affine(f, 1, name="hq"))
                m.latent(h, dist.Bernoulli(logits=ppl.Affine(z, 1, name="hp")))
                m.observe("lik", dist.Normal(ppl.Affine(h, 1, name="dec"), 1.0), x)
            else:
                m.observe("lik", dist.Normal(ppl.Affine(z, 1, name="dec"), 1.0), x)
    return m


def _lbern(v, a):
    return float(np.sum(v * a - np.logaddexp(0, a)))


def exact_objective(kind, per_row, p, X):
    """E_q[log q(z) - log p(z) + N / B sum_i (per-row terms)], z and each row's h enumerated."""
    if kind == "bernoulli":
        zs, lq = [np.array(c, float) for c in itertools.product((0, 1), repeat=2)], _lbern
    else:
        zs = list(np.eye(3))

        def lq(v, a):
            return float(v @ (a - np.log(np.exp(a).sum())))
    tot = 0.0
    for z in zs:
        rows = 0.0
        for x in X[:, 0]:
            if not per_row:
                rows += 0.5 * (x - (z @ p["dec.W"] + p["dec.b"])[0]) ** 2 + 0.5 * np.log(2 * np.pi)
                continue
            f = np.tanh(np.concatenate([z, [x]]) @ p["enc.W"] + p["enc.b"])
            aq, ap = f @ p["hq.W"] + p["hq.b"], z @ p["hp.W"] + p["hp.b"]
            for h in (np.zeros(1), np.ones(1)):
                nll = 0.5 * (x - (h @ p["dec.W"] + p["dec.b"])[0]) ** 2 + 0.5 * np.log(2 * np.pi)
                rows += np.exp(_lbern(h, aq)) * (_lbern(h, aq) - _lbern(h, ap) + nll)
        tot += np.exp(lq(z, p["qz"])) * (lq(z, p["qz"]) - lq(z, p["pz"]) + N_DATA / len(X) * rows)
    return tot


def _central(f, params, eps=1e-6):
    out = {}
    for k, v in params.items():
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            p = {a: np.array(b, dtype=np.float64) for a, b in params.items()}
            p[k][idx] += eps
            fp = f(p)
            p[k][idx] -= 2 * eps
            g[idx] = (fp - f(p)) / (2 * eps)
        out[k] = g
    return out


@pytest.mark.parametrize("per_row", [False, True], ids=["alone", "under_a_per_row_layer"])
@pytest.mark.parametrize("kind,estimator", [("bernoulli", "disarm"), ("categorical", "score")])
def test_a_global_discrete_node_is_unbiased(kind, estimator, per_row):
    X = np.random.default_rng(1).normal(size=(BATCH, 1)) + 1.0
    m = discrete_model(kind, per_row)
    est = {"z": estimator, **({"h": "disarm"} if per_row else {})}
    prog = m.compile(estimators=est, dtype=np.float64, samples=128)   # 128 global draws per call
    assert prog.choices[m.nodes["z"]][0].estimator == estimator
    params = {k: np.array(prog.params[k], np.float64) for k in prog.params}
    e = _central(lambda p: exact_objective(kind, per_row, p, X), params)
    names = list(params)
    G = draws(prog, {"x": X}, names, 2500)
    r = assert_unbiased(G, np.concatenate([e[k].ravel() for k in names]), f"global {kind} {estimator}")
    print(f"global {kind} under {estimator}{' under a per-row layer' if per_row else ''}: {r}")
    j = sum(params[k].size for k in names[:names.index("qz")])   # the global node's own parameters alone
    print("  qz alone:", assert_unbiased(G[:, j:j + params["qz"].size], e["qz"], "qz"))


# ------------------------------------------------------------------ what a plate changes
def test_a_global_node_is_drawn_once_per_sample_and_shared_by_every_row():
    X, y = blr_data()
    prog = blr_model().compile(samples=3)
    w = prog.sample({"x": X[:5], "y": y[:5]}, seed=2, nodes=["w"])["w"].reshape(5, 3, D_BLR)
    assert np.all(w == w[:1])                       # every data row the same draws
    assert len({tuple(r) for r in w[0]}) == 3       # three samples, three draws
    w2 = prog.sample({"x": X[5:12], "y": y[5:12]}, seed=2, nodes=["w"])["w"].reshape(7, 3, D_BLR)
    assert np.all(w2[0] == w[0])                    # the same for any batch (addressed by data row 0)
    assert "w" in prog.explain() and "global" in prog.explain()


def test_the_loss_is_the_data_sets_elbo_estimate():
    """loss = N / B * sum over the batch of the per-row costs + the global terms once."""
    X, y = blr_data()
    prog = blr_model().compile(dtype=np.float64)
    parts = prog.loss_parts({"x": X[:10], "y": y[:10]}, seed=1)
    w = prog.sample({"x": X[:10], "y": y[:10]}, seed=1, nodes=["w"])["w"][0]
    nll = 0.5 * ((y[:10, 0] - X[:10] @ w) / SIG) ** 2 + np.log(SIG) + 0.5 * np.log(2 * np.pi)
    assert parts["lik"] == pytest.approx(N_BLR / 10 * nll.sum(), rel=1e-9)
    assert parts["logp_w"] == pytest.approx(0.5 * (w ** 2).sum() + 1.5 * np.log(2 * np.pi), rel=1e-9)
    assert prog.loss({"x": X[:10], "y": y[:10]}, seed=1) == pytest.approx(sum(parts.values()), rel=1e-9)


def test_bad_plates_are_refused_with_the_fix():
    with Model("bad") as m:
        with pytest.raises(ModelError, match="size must be >= 1"):
            with m.plate("data", size=0):
                pass
        with m.plate("data", size=10):
            with pytest.raises(ModelError, match="the data plate does not nest in itself"):
                with m.plate("inner", size=3):
                    pass
        with pytest.raises(ModelError, match="one plate of data rows per model"):
            with m.plate("other", size=3):
                pass
        with pytest.raises(ModelError, match="same size"):
            with m.plate("data", size=11):
                pass
    with Model("bad_prior") as m:
        x = m.input("x", 2)
        w = ppl.Normal("w", ppl.param("loc", 2), 1.0)
        m.latent(w, dist.Normal(ppl.Affine(x, 2, name="px"), 1.0))
        with m.plate("data", size=10):
            m.observe("lik", dist.Normal(w, 1.0), x)
    with pytest.raises(ModelError, match="'w' is global .* reads the per-row node 'px'"):
        m.compile()


def test_iwae_with_a_global_node_is_refused():
    with pytest.raises(ModelError, match="iwae.*global node.*w"):
        blr_model().compile(objective="iwae", samples=2)


def test_derived_programs_keep_the_plate():
    """sample_prior / predict draw a global latent once per draw, shared by every row; evaluate
    gives the data set's bound per row (test_plated_bounds_against_closed_forms checks it)."""
    X, y = blr_data()
    prog = blr_model().compile()
    prior = prog.sample_prior(data={"x": X[:4]}, nodes=["w", "y"], num_samples=5)
    assert prior["w"].shape == (5, 4, D_BLR)
    assert np.all(prior["w"] == prior["w"][:, :1]) and len({tuple(v) for v in prior["w"][:, 0]}) == 5
    pred = prog.predict({"x": X[:4]}, "y", num_samples=3)["y"]
    assert pred.shape == (3, 4, 1) and np.all(np.isfinite(pred))
    assert np.isfinite(prog.evaluate({"x": X, "y": y}, samples=3))


@pytest.mark.cuda
@pytest.mark.parametrize("case", ["blr", "disarm"])
def test_a_plated_model_runs_on_the_cuda_target(case):
    """The same step on the CUDA target (the simulator without a GPU): the same loss and gradient."""
    X, y = blr_data()
    data = {"x": X[:7], "y": y[:7]} if case == "blr" else {"x": X[:7, :1]}
    opts = dict(dtype=np.float64, samples=2, estimators={"z": "disarm", "h": "disarm"} if case != "blr" else "auto")
    build = blr_model if case == "blr" else (lambda: discrete_model("bernoulli", True))
    cpu, gpu = build().compile(**opts), build().compile(target="cuda", **opts)
    gpu.theta[:] = cpu.theta
    (lc, gc), (lg, gg) = cpu.grad(data, seed=4), gpu.grad(data, seed=4)
    assert lg == pytest.approx(lc, rel=1e-9)
    for k in gc:
        np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_the_readme_plate_examples_run():
    """README's "Global latents and plates" block, as written, on small data (its fit shortened)."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = text.split("## Global latents and plates", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    env = {"ppl": ppl, "dist": dist, "np": np, "X": X[:, :3], "Y": rng.normal(size=(40, 1))}
    exec(code.replace("steps=4000", "steps=20").replace("steps=6000", "steps=20").replace("len(X)", "40"), env)
    m, prog = env["m"], env["prog"]
    assert m.name == "eight_schools" and m.plates == {"data": 8} and m.groups["schools"].size == 8
    assert env["draws"].shape == (1000, 8, 1) and np.all(np.isfinite(env["draws"]))
    assert {"mu", "tau_unconstrained"} <= {n.name for n in prog.analysis.global_nodes}
    assert prog.analysis.group_of[m.nodes["eta"]] == "schools"


@pytest.mark.parametrize("kind", ["bernoulli", "categorical"])
def test_an_enumerated_global_node_is_exact(kind):
    """Enumeration of a global node (every row reads the same configuration c, weight q(c)) gives
    the exact gradient of the oracle above, to its central differences' precision."""
    X = np.random.default_rng(1).normal(size=(BATCH, 1)) + 1.0
    prog = discrete_model(kind, False).compile(estimators={"z": "enumerate"}, dtype=np.float64)
    params = {k: np.array(prog.params[k], np.float64) for k in prog.params}
    e = _central(lambda p: exact_objective(kind, False, p, X), params)
    _, g = prog.grad({"x": X}, seed=3)
    for k in params:
        np.testing.assert_allclose(g[k], e[k], rtol=1e-6, atol=1e-7, err_msg=k)


# --------------------------------------------------------------------------- evaluation
def test_plated_bounds_against_closed_forms():
    """A Bayesian linear regression with a mean-field guide q(w) = N(m, diag s^2):
    - elbo: the data set's ELBO per row, E_q log p(y | X w) - KL(q || N(0, I)), in closed form;
      the estimate's SE from its S draws (each draw's total over the rows), |error| < 4 SE, and
      the closed form scaled by 1.05 is > 4 SE away (the test of the test);
    - iwae: between the ELBO and the exact evidence log N(y; 0, SIG^2 I + X X') (per row), up to
      4 SEs of each estimate;
    - lppd: with q the exact posterior (orthogonal design), each row's log N(y_i; x_i mu,
      SIG^2 + x_i' Sigma x_i), mean over rows, |error| < 4 SE + 0.002 (the logmeanexp's bias);
      the exact value moved by 5% fails."""
    from oracles import SIG_BLR as sig, blr_design
    X, y, mu, sigma = blr_design()
    with Model("blr_eval") as m:
        x, t = m.input("x", 2), m.input("y", 1)
        w = ppl.Normal("w", ppl.param("w_loc", 2), ppl.softplus(ppl.param("w_s", 2)))
        m.latent(w, dist.Normal(0.0, 1.0))
        with m.plate("data", size=len(X)):
            m.observe("lik", dist.Normal(ppl.rowdot(x, w), sig), t)
    prog = m.compile(dtype=np.float64)
    data, n, S = {"x": X, "y": y}, len(X), 4000
    loc, sd = mu + 0.3, 1.5 * np.sqrt(np.diag(sigma))
    prog.params["w_loc"][...], prog.params["w_s"][...] = loc, np.log(np.expm1(sd))
    ell = np.sum(-0.5 * np.log(2 * np.pi * sig ** 2) - ((y[:, 0] - X @ loc) ** 2 + (X ** 2) @ sd ** 2) / (2 * sig ** 2))
    exact = (ell - np.sum(-np.log(sd) - 0.5 + 0.5 * (loc ** 2 + sd ** 2))) / n
    glob, rows = prog.plated_log_weights(data, samples=S, seed=3)
    per_draw = (glob + rows.sum(0)) / n
    se = per_draw.std() / np.sqrt(S)
    est = prog.evaluate(data, "elbo", samples=S, seed=3)
    assert est == pytest.approx(per_draw.mean(), rel=1e-12)
    print(f"elbo {est:.5f} exact {exact:.5f} se {se:.5f}")
    assert abs(est - exact) < 4 * se and abs(est - 1.05 * exact) > 4 * se
    evidence = scipy_stats.multivariate_normal(np.zeros(n), sig ** 2 * np.eye(n) + X @ X.T).logpdf(y[:, 0]) / n
    iwae = prog.evaluate(data, "iwae", samples=S, seed=3)
    wts = np.exp(n * (per_draw - per_draw.max()))
    se_iwae = wts.std() / wts.mean() / np.sqrt(S) / n                 # the delta method's SE of log mean w / n
    assert exact - 4 * se < iwae < evidence + 4 * se_iwae, (exact, iwae, evidence, se_iwae)
    prog.params["w_loc"][...], prog.params["w_s"][...] = mu, np.log(np.expm1(np.sqrt(np.diag(sigma))))
    var = sig ** 2 + np.einsum("ij,jk,ik->i", X, sigma, X)
    lppd_exact = np.mean(-0.5 * np.log(2 * np.pi * var) - (y[:, 0] - X @ mu) ** 2 / (2 * var))
    lw = prog.log_weights(data, samples=S, seed=5)
    p = np.exp(lw - lw.max(1, keepdims=True))
    se = np.mean(p.std(1) / p.mean(1)) / np.sqrt(S)          # the delta method's SE, averaged (an upper bound)
    lppd = prog.evaluate(data, "lppd", samples=S, seed=5)
    print(f"lppd {lppd:.5f} exact {lppd_exact:.5f} se {se:.5f}")
    assert abs(lppd - lppd_exact) < 4 * se + 0.002 and abs(lppd - 1.05 * lppd_exact) > 4 * se + 0.002


def test_a_plate_without_size_takes_the_rows_fit_trains_on():
    """m.plate(name) without size: the step refuses before a fit (naming the plate and the fix);
    fit sets N to its data's rows, after which the loss equals that of the model given size=N,
    and fit's held-out score of a plated model is its negated log predictive density; a size the
    model gave that differs from fit's rows is warned about."""
    X, y = blr_data()

    prog, sized = blr_model(None).compile(dtype=np.float64), blr_model(60).compile(dtype=np.float64)
    with pytest.raises(ModelError, match=r"plate 'data' has no size yet .*ppl.fit sets it.*set_plate_size"):
        prog.loss({"x": X[:5], "y": y[:5]})
    train, held = {"x": X[:60], "y": y[:60]}, {"x": X[60:], "y": y[60:]}
    h = ppl.fit(prog, train, ppl.optim.Adam(0.05), steps=200, batch_size=20, progress=False,
                eval_every=100, eval_data=held)
    assert prog.model.plates == {"data": 60} and len(h.eval) == 2 and np.isfinite(h.eval).all()
    assert h.eval[-1] == pytest.approx(-prog.evaluate(held, "lppd", samples=10, seed=ppl.training.fit.EVAL_SEED))
    sized.theta[:] = prog.theta
    assert prog.loss(train, seed=2) == sized.loss(train, seed=2)
    ppl.fit(prog, {"x": X[:40], "y": y[:40]}, ppl.optim.Adam(0.05), steps=1, batch_size=20, progress=False)
    assert prog.model.plates == {"data": 40}                              # a later fit on other rows
    with pytest.warns(UserWarning, match="plate 'data' has size 60 but fit's data has 40 rows"):
        ppl.fit(sized, {"x": X[:40], "y": y[:40]}, ppl.optim.Adam(0.05), steps=1, batch_size=20, progress=False)


def test_a_batch_larger_than_the_plate_is_refused():
    """A gradient's batch subsamples the plate's N rows (costs weighted N / batch): a plate of 4
    given 6 rows is an error naming the plate, its size and the fix (as Pyro refuses it)."""
    import ppl
    with ppl.Model("plate_overfull") as m:
        x, y = m.input("x", 1), m.input("y", 1)
        w = m.latent("w", ppl.dist.Normal(0.0, 1.0))
        with m.plate("data", size=4):
            m.observe("y", ppl.dist.Normal(w * x, 1.0), y)
    prog = m.compile()
    prog.grad({"x": np.ones((4, 1)), "y": np.ones((4, 1))})
    with pytest.raises(ppl.ModelError, match=r"plate 'data' has size 4 but the batch has 6 rows.*at most 4 rows"):
        prog.grad({"x": np.ones((6, 1)), "y": np.ones((6, 1))})
