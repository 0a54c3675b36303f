"""Models declared with m.latent / m.observe (ppl/language/declare.py).

- the derived costs equal the hand-written ones of the same model (the bundled models as they
  were written before the declaration) on random parameters: same draws, same per-row totals;
- prog.log_weights / evaluate equal the NumPy log weights log p(x, h) - log q(h | x) computed
  at the evaluation program's own hard draws (tests/numpy_models.py, float64);
- ancestral samples of sample_prior follow the generative distribution: chi-square over the
  joint cells of a small discrete model and KS for a Gaussian regression's predictions, each
  run with enough draws that the same test against a law with one probability (or the scale)
  moved by 5% rejects: the test of the test below;
- predict needs only the inputs upstream of the requested nodes (no target);
- declaration errors name the node and the fix.
"""
import numpy as np
import pytest
from scipy import stats

import ppl
from ppl import Affine, Bernoulli, Categorical, Model, Normal
from ppl.models import categorical_vae, gaussian_vae, sbn

import numpy_models as NM

RNG = np.random.default_rng(7)
X = (RNG.random((6, 12)) > 0.5).astype(np.float64)


# --------------------------------------------------------------------------- the hand-written models
def hand_sbn(latent, nonlinear, hidden, pixels):
    """models/sbn.py before the declaration: every cost written by hand."""
    def net(inp, out, name):
        return Affine(ppl.tanh(Affine(inp, hidden, name=f"{name}_h")), out, name=name) if nonlinear else \
            Affine(inp, out, name=name)
    with Model("hand_sbn") as m:
        x = m.input("x", pixels)
        hs, prev = [], x
        for l, n in enumerate(latent, 1):
            h = Bernoulli(f"h{l}", logits=net(prev, n, f"q{l}"))
            m.cost(f"logq{l}", ppl.log_prob(h))
            hs.append(h)
            prev = h
        m.cost("recon", ppl.bernoulli_nll(net(hs[0], pixels, "p0"), target=x))
        for l in range(1, len(latent)):
            m.cost(f"prior{l}", ppl.bernoulli_nll(net(hs[l], latent[l - 1], f"p{l}"), target=hs[l - 1]))
        m.cost(f"prior{len(latent)}", ppl.bernoulli_nll(ppl.param("prior", latent[-1], 0.0), target=hs[-1]))
    return m


def hand_gaussian_vae(hidden, latent, pixels):
    with Model("hand_gvae") as m:
        x = m.input("x", pixels)
        e = ppl.tanh(Affine(x, hidden, name="enc"))
        loc = Affine(e, latent, name="loc")
        scale = ppl.softplus(Affine(e, latent, name="scale"))
        z = Normal("z", loc=loc, scale=scale)
        d = ppl.tanh(Affine(z, hidden, name="dec"))
        m.cost("recon", ppl.bernoulli_nll(Affine(d, pixels, name="out"), target=x))
        m.cost("kl", ppl.gaussian_kl(loc, scale))
    return m


def hand_categorical_vae(G, K, H, pixels):
    with Model("hand_cvae") as m:
        x = m.input("x", pixels)
        z = Categorical("z", logits=Affine(ppl.tanh(Affine(x, H, name="enc_h")), G * K, name="enc"), classes=K)
        m.cost("logq", ppl.log_prob(z))
        m.cost("prior", ppl.softmax_xent(ppl.param("prior", G * K, 0.0), target=z, classes=K))
        dec = Affine(ppl.tanh(Affine(z, H, name="dec_h")), pixels, name="dec")
        m.cost("recon", ppl.bernoulli_nll(dec, target=x))
    return m


CASES = {
    "sbn": (lambda: sbn.build(latent=(4, 3), nonlinear=True, hidden=5, pixels=12),
            lambda: hand_sbn((4, 3), True, 5, 12)),
    "gaussian_vae": (lambda: gaussian_vae.build(hidden=5, latent=3, pixels=12),
                     lambda: hand_gaussian_vae(5, 3, 12)),
    "categorical_vae": (lambda: categorical_vae.build(groups=2, classes=3, hidden=5, pixels=12),
                        lambda: hand_categorical_vae(2, 3, 5, 12)),
}


def randomise(prog, seed=0):
    prog.theta[:] = np.random.default_rng(seed).normal(0.0, 0.7, prog.theta.shape)
    return prog


@pytest.mark.parametrize("name", list(CASES))
def test_derived_costs_equal_the_hand_written_ones(name):
    decl, hand = (f().compile(dtype=np.float64, estimators="score", samples=2) for f in CASES[name])
    randomise(decl, 1)
    for k in decl.params:
        hand.params[k][...] = decl.params[k]
    assert sorted(hand.params) == sorted(decl.params)
    for seed in (0, 5):
        a, b = decl.loss_parts(X, seed=seed), hand.loss_parts(X, seed=seed)
        assert sum(a.values()) == pytest.approx(sum(b.values()), rel=1e-12, abs=1e-12)
        assert decl.loss(X, seed=seed) == pytest.approx(hand.loss(X, seed=seed), rel=1e-12, abs=1e-12)
    lines = decl.explain().splitlines()
    assert any(line.startswith("costs derived from m.latent / m.observe") for line in lines)
    assert any(line.split("|")[0].strip() == "recon" and line.split("|")[1].strip() == "-" for line in lines)


@pytest.mark.parametrize("name", list(CASES))
def test_log_weights_equal_numpy_at_the_same_draws(name, monkeypatch):
    """prog.log_weights against the NumPy model at the evaluation program's draws (float64);
    evaluate's ELBO and IWAE are their mean and mean log-mean-exp."""
    prog = randomise(CASES[name][0]().compile(dtype=np.float64, estimators="score"), 2)
    S, seed = 5, 3
    lw = prog.log_weights(X, samples=S, seed=seed)
    draws = prog._evaluator(S, np.float64).sample(X, seed=seed, step=0)
    ref = NM.log_weights(name, prog, X, draws, S)
    assert lw.shape == (X.shape[0], S)
    np.testing.assert_allclose(lw, ref, rtol=1e-10, atol=1e-10)
    assert prog.evaluate(X, "elbo", samples=S, seed=seed) == pytest.approx(ref.mean(), rel=1e-10)
    iwae = (np.log(np.exp(ref - ref.max(1, keepdims=True)).mean(1)) + ref.max(1)).mean()
    assert prog.evaluate(X, "iwae", samples=S, seed=seed) == pytest.approx(iwae, rel=1e-10)
    assert prog.evaluate(X, "iwae", samples=S, seed=seed) >= prog.evaluate(X, "elbo", samples=S, seed=seed)
    if name == "sbn":   # evaluated in blocks of 4 data rows (large test sets): the same draws
        from ppl.language import declare
        monkeypatch.setattr(declare, "EVAL_BLOCK", 4 * S * 12)
        np.testing.assert_array_equal(prog.log_weights(X, samples=S, seed=seed), lw)


# --------------------------------------------------------------------------- ancestral sampling
def discrete_model():
    """z ~ Categorical(3), h | z ~ Bernoulli, x | z, h ~ Bernoulli^2; a guide q(z | x) q(h | x)."""
    with Model("decl_chain") as m:
        x = m.input("x", 2)
        z = Categorical("z", logits=Affine(x, 3, name="qz"), classes=3)
        h = Bernoulli("h", logits=Affine(x, 1, name="qh"))
        m.latent(z, ppl.dist.Categorical(logits=ppl.param("pz", 3, init=[0.4, -0.3, 0.1]), classes=3))
        m.latent(h, ppl.dist.Bernoulli(logits=Affine(z, 1, name="ph")))
        m.observe("lik", ppl.dist.Bernoulli(logits=Affine(ppl.concat([z, h]), 2, name="px")), x)
    return m


def joint_probabilities(P, shift=None):
    """p(z, h, x) over the 3 x 2 x 4 cells, in NumPy; shift=(what, factor) multiplies one
    probability of the model by factor (the alternative the test must detect)."""
    pz = np.exp(P["pz"] - P["pz"].max())
    pz /= pz.sum()
    if shift and shift[0] == "pz0":
        pz[0] *= shift[1]
        pz[1:] *= (1 - pz[0]) / pz[1:].sum()
    out = np.zeros((3, 2, 4))
    for k in range(3):
        zk = np.eye(3)[k]
        ph = 1 / (1 + np.exp(-(zk @ P["ph.W"] + P["ph.b"])[0]))
        for hv in (0, 1):
            px = 1 / (1 + np.exp(-(np.concatenate([zk, [hv]]) @ P["px.W"] + P["px.b"])))
            if shift and shift[0] == "px0" and k == 0 and hv == 0:
                px = px.copy()
                px[0] *= shift[1]
            for c in range(4):
                xv = np.array([c & 1, c >> 1])
                out[k, hv, c] = pz[k] * (ph if hv else 1 - ph) * np.prod(np.where(xv, px, 1 - px))
    return out.ravel()


def cells(s):
    return s["z"].argmax(1) * 8 + s["h"][:, 0].astype(int) * 4 + s["x"][:, 0].astype(int) + 2 * s["x"][:, 1].astype(int)


N_DRAWS = 400_000
ALPHA = 1e-3
SHIFTS = (("pz0", 1.05), ("px0", 1.05))   # p(z = 0), and p(x_0 = 1 | z = 0, h = 0): one cell group


def test_sample_prior_matches_the_generative_distribution_chi_square():
    """Chi-square over the 24 joint cells of N_DRAWS ancestral draws at level ALPHA; its power
    against each 5% shift (noncentral chi-square) is >= 0.99, and the same counts reject them."""
    prog = randomise(discrete_model().compile(dtype=np.float64, estimators="score"), 3)
    P = {k: np.asarray(v, np.float64) for k, v in prog.params.items()}
    s = prog.sample_prior(N_DRAWS, seed=11)
    assert set(s) == {"z", "h", "x"} and s["x"].shape == (N_DRAWS, 2)
    counts = np.bincount(cells(s), minlength=24)
    p = joint_probabilities(P)
    assert p.sum() == pytest.approx(1.0) and p.min() * N_DRAWS > 50
    crit = stats.chi2.ppf(1 - ALPHA, 23)
    chi2 = ((counts - N_DRAWS * p) ** 2 / (N_DRAWS * p)).sum()
    assert chi2 < crit, (chi2, crit)
    for shift in SHIFTS:                 # the test of the test
        q = joint_probabilities(P, shift)
        q /= q.sum()
        lam = N_DRAWS * ((q - p) ** 2 / p).sum()
        assert 1 - stats.ncx2.cdf(crit, 23, lam) >= 0.99, (shift, lam)
        assert ((counts - N_DRAWS * q) ** 2 / (N_DRAWS * q)).sum() > crit, shift
    # the recognition part given data: q(z | x) of the training program, only x needed
    g = prog.sample({"x": np.tile([[1.0, 0.0]], (4, 1))}, nodes=["z"])
    assert set(g) == {"z"} and g["z"].shape == (4, 3) and np.all(g["z"].sum(1) == 1)


def regression_model():
    with Model("decl_regression") as m:
        x = m.input("x", 1)
        y = m.input("y", 1)
        f = ppl.tanh(Affine(x, 4, name="feat"))
        mu = Affine(f, 1, name="mu")
        sigma = ppl.softplus(Affine(f, 1, name="sig"), name="sigma")
        m.observe("nll", ppl.dist.Normal(mu, sigma), y)
    return m


def test_predict_needs_no_target_and_matches_the_likelihood_ks():
    """predict({x}) draws y | x; the standardised draws pass KS against N(0, 1) at ALPHA and the
    same draws reject N(0, 1.05^2) and N(0.05, 1) (the test of the test)."""
    prog = randomise(regression_model().compile(dtype=np.float64), 4)
    x = np.random.default_rng(1).uniform(-2, 2, (200_000, 1))
    y = prog.predict({"x": x}, seed=2)["y"]                       # no target given
    v = prog.sample({"x": x}, nodes=["mu", "sigma"])               # the training graph without y
    with pytest.raises(ppl.ModelError, match="missing"):
        prog.sample({"x": x})
    r = ((y - v["mu"]) / v["sigma"])[:, 0]
    assert stats.kstest(r, "norm").pvalue > ALPHA
    assert stats.kstest(r, "norm", args=(0.0, 1.05)).pvalue < ALPHA
    assert stats.kstest(r, "norm", args=(0.05, 1.0)).pvalue < ALPHA
    assert prog.predict({"x": x[:3], "y": np.zeros((3, 1))}, seed=2)["y"].shape == (3, 1)   # extra inputs ignored
    np.testing.assert_array_equal(prog.predict(x[:3], seed=2)["y"], y[:3])                    # one input: an array
    np.testing.assert_array_equal(prog.sample_prior(data={"x": x[:3]}, seed=2)["y"], y[:3])   # covariates as data
    with pytest.raises(ppl.ModelError, match="depend on"):
        prog.predict(nodes=["y"], batch=3)                          # y depends on x
    # an exact log-likelihood: evaluate's bounds are log p(y | x); NaN parameters give NaN
    xy = {"x": x[:50], "y": y[:50]}
    ll = stats.norm.logpdf(y[:50, 0], v["mu"][:50, 0], v["sigma"][:50, 0]).mean()
    assert prog.evaluate(xy, samples=2) == pytest.approx(ll, rel=1e-10)
    assert prog.evaluate(xy, "iwae", samples=2) == pytest.approx(ll, rel=1e-10)
    prog.theta[:] = np.nan
    assert np.isnan(prog.evaluate(xy, samples=2)) and np.isnan(prog.evaluate(xy, "iwae", samples=2))


def test_gaussian_vae_prior_draws_ks():
    prog = randomise(gaussian_vae.build(hidden=5, latent=3, pixels=12).compile(dtype=np.float64), 5)
    s = prog.sample_prior(20_000, seed=1)
    assert s["z"].shape == (20_000, 3) and set(np.unique(s["x"])) <= {0.0, 1.0}
    assert stats.kstest(s["z"].ravel(), "norm").pvalue > ALPHA
    assert stats.kstest(s["z"].ravel(), "norm", args=(0.0, 1.05)).pvalue < ALPHA


# --------------------------------------------------------------------------- errors
def test_declaration_errors_name_the_node_and_the_fix():
    with Model("decl_err1") as m:
        x = m.input("x", 4)
        h1 = Bernoulli("h1", logits=Affine(x, 3, name="q1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 2, name="q2"))
        m.observe("recon", ppl.dist.Bernoulli(logits=Affine(h1, 4, name="p0")), x)
        m.latent(h1, ppl.dist.Bernoulli(logits=Affine(h2, 3, name="p1")))
        with pytest.raises(ppl.ModelError, match=r"'h1' already has a prior"):
            m.latent(h1, ppl.dist.Bernoulli(0.0))
        with pytest.raises(ppl.ModelError, match=r"'q1' is a affine node, not a stochastic unit"):
            m.latent(m.nodes["q1"], ppl.dist.Bernoulli(0.0))
        with pytest.raises(ppl.ModelError, match=r"Normal prior does not describe .*'h2'.*ppl.dist.Bernoulli"):
            m.latent(h2, ppl.dist.Normal(0.0, 1.0))
        with pytest.raises(ppl.ModelError, match=r"no closed-form KL .*'h2'.*kl='sampled'"):
            m.latent(h2, ppl.dist.Bernoulli(0.0), kl="analytic")
        with pytest.raises(ppl.ModelError, match=r"parameter logits 'w3' has width 3.* 2"):
            m.latent(h2, ppl.dist.Bernoulli(ppl.param("w3", 3)))
        with pytest.raises(ppl.ModelError, match=r"'h2' is a stochastic node drawn by the guide.*m.latent\(h2"):
            m.observe("bad", ppl.dist.Bernoulli(0.0), h2)
        with pytest.raises(ppl.ModelError, match=r"distribution spec"):
            m.observe("bad", "Bernoulli", x)
        with pytest.raises(ppl.ModelError, match=r"scale is the constant -1.0"):
            m.observe("bad", ppl.dist.Normal(0.0, -1.0), m.input("y", 2))
        with pytest.raises(ppl.ModelError, match=r"'x' is already observed"):
            m.observe("again", ppl.dist.Bernoulli(0.0), x)
    with pytest.raises(ppl.ModelError, match=r"'h2' is drawn by the guide but has no prior: declare m.latent\(h2"):
        m.compile()
    with Model("decl_err2") as m:   # a prior that reads the data it generates
        x = m.input("x", 4)
        e = Affine(x, 3, name="enc")
        h = Bernoulli("h", logits=e)
        m.latent(h, ppl.dist.Bernoulli(logits=ppl.tanh(e)))
        m.observe("recon", ppl.dist.Bernoulli(logits=Affine(h, 4, name="dec")), x)
        m.cost("extra", ppl.total(h))
    prog = m.compile()
    with pytest.raises(ppl.ModelError, match=r"generative model of 'h' depends on 'h' itself"):
        prog.sample_prior(3)
    with pytest.raises(ppl.ModelError, match=r"cost\(s\) 'extra' were added with m.cost"):
        prog.evaluate({"x": np.zeros((2, 4))})
    with pytest.raises(ppl.ModelError, match=r"bound must be 'elbo', 'iwae' or 'lppd'"):
        prog.evaluate({"x": np.zeros((2, 4))}, bound="kl")
    hand = CASES["sbn"][1]().compile()
    with pytest.raises(ppl.ModelError, match=r"needs a model declared with m.latent / m.observe"):
        hand.sample_prior(3)
    with pytest.raises(ppl.ModelError, match=r"needs a model declared"):
        hand.evaluate({"x": X})


DECLARED_USER_MODEL = '''
import ppl
from ppl import Model, Affine, Bernoulli, dist

DEFAULTS = dict(steps=5, batch=16)


def build(latent=4):
    with Model("my_declared_sbn") as m:
        x = m.input("x", 12)
        h = Bernoulli("h", logits=Affine(x, latent, name="enc"))
        m.latent(h, dist.Bernoulli(logits=ppl.param("prior", latent)))
        m.observe("recon", dist.Bernoulli(logits=Affine(h, 12, name="dec")), x)
    return m
'''


def test_a_declared_user_model_reports_its_bounds(capsys, tmp_path):
    """`ppl train file.py:build --data` of a declared model reports prog.evaluate's bounds beside
    the held-out loss."""
    from ppl.cli import main
    f = tmp_path / "declared.py"
    f.write_text(DECLARED_USER_MODEL)
    np.savez(tmp_path / "d.npz", x=(np.random.default_rng(0).random((60, 12)) < 0.3).astype(np.float32))
    assert main(["train", f"{f}:build", "--data", str(tmp_path / "d.npz"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "logp_h" in out and "test_elbo" in out and "test_iwae_100" in out, out


def test_fit_held_out_loss_of_a_declared_model_is_its_negated_elbo():
    """fit's held-out curve (heldout_loss) of a declared ELBO model is -prog.evaluate('elbo'); a
    hand-written model keeps the hard-sample objective; both estimate the same -ELBO here, so
    they agree within Monte-Carlo error (1,000 draws per row each: 4.5 SE of the difference)."""
    from ppl.training.fit import EVAL_SEED, heldout_loss
    decl, hand = (f().compile(dtype=np.float64, estimators="score") for f in CASES["sbn"])
    randomise(decl, 4)
    for k in decl.params:
        hand.params[k][...] = decl.params[k]
    got = heldout_loss(decl, X, draws=7)
    assert got == -decl.evaluate(X, "elbo", samples=7, seed=EVAL_SEED)
    lw = decl.log_weights(X, samples=1000, seed=1)
    ref = heldout_loss(hand, X, draws=1000)
    assert abs(-lw.mean() - ref) < 4.5 * np.sqrt(2) * lw.mean(0).std() / np.sqrt(1000)
