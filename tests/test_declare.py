"""Models declared with m.latent / m.observe (ppl/declare.py).

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
def test_log_weights_equal_numpy_at_the_same_draws(name):
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
