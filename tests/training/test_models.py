"""Every ready model end to end: a short training run with a fixed seed improves its held-out
objective by a stated margin; the SBN's bounds are checked against exact enumeration; the
training loop's checkpoints resume bit-exactly and are never overwritten by a broken run.

Budget: the whole file runs in about a minute on 2 cores after the programs are compiled.
"""
import numpy as np
import pytest
from machine import assert_identical

import ppl
from ppl.training.fit import fit, load_checkpoint
from ppl.models import get
from ppl.training.optim import Adam, make


def train(name, steps, build=None, estimators=None, lr=None, samples=None, seed=0):
    mod = get(name)
    D = mod.DEFAULTS
    d = mod.data()
    prog = mod.build(**(build or {})).compile(
        estimators=estimators or D.get("estimators", "auto"), policy=D["policy"], dtype=np.dtype(D["dtype"]),
        samples=samples or D["samples"], seed=seed)
    before = mod.evaluate(prog, d)
    hist = fit(prog, d["train"], make(D["optimizer"], lr or D["lr"]), steps=steps, batch_size=D["batch"],
               seed=seed, progress=False)
    return prog, d, before, mod.evaluate(prog, d), hist


def test_sbn_small_bounds_against_exact_likelihood():
    """Linear SBN 64-8 (score + LOO, K=4), 800 steps: the test ELBO rises by > 10 nats; ELBO <=
    IWAE(100) <= exact log-likelihood (+0.05 nats of Monte-Carlo slack); the IWAE bound is
    within 0.5 nats of the exact value."""
    prog, d, before, after, _ = train("sbn", 800, build={"latent": (8,)})
    assert after["test_elbo"] > before["test_elbo"] + 10, (before, after)
    assert after["test_elbo"] <= after["test_iwae_100"] <= after["test_exact_ll"] + 0.05, after
    assert after["test_exact_ll"] - after["test_iwae_100"] < 0.5, after
    # the NumPy evaluation agrees with the compiled program's own loss (score: hard forward)
    prog_elbo = -np.mean([prog.loss(d["test"], seed=k) for k in range(100)])
    assert abs(prog_elbo - after["test_elbo"]) < 0.15, (prog_elbo, after)


def test_sbn_two_layer_nonlinear_improves():
    """Two stochastic layers (8, 4), tanh MLPs, 600 steps: test ELBO rises by > 8 nats."""
    prog, _, before, after, _ = train("sbn", 600, build={"latent": (8, 4), "nonlinear": True})
    assert [n.name for n in prog.model.order if n.is_stochastic] == ["h1", "h2"]
    assert after["test_elbo"] > before["test_elbo"] + 8, (before, after)
    assert after["test_elbo"] <= after["test_exact_ll"] + 0.05


def test_poisson_factor_trains_on_counts():
    """Gamma latents (implicit pathwise) under a Poisson likelihood, both -log p heads from their
    laws: 1500 steps raise the held-out ELBO by > 20 nats per row, ELBO <= IWAE(100), and both
    stay below the truth's log-likelihood given its own factor activations."""
    _, _, before, after, _ = train("poisson_factor", 1500)
    assert after["test_elbo"] > before["test_elbo"] + 20, (before, after)
    assert after["test_elbo"] <= after["test_iwae_100"] <= after["true_loglik"], after


def test_gaussian_vae_improves():
    """64-32-8 tanh, pathwise, 800 steps at Adam 3e-3: test ELBO from about -49 to above -26."""
    prog, _, before, after, _ = train("gaussian_vae", 800)
    assert prog.choices and all(ch.estimator == "pathwise" for ch, _ in prog.choices.values())
    assert after["test_elbo"] > before["test_elbo"] + 15 and after["test_elbo"] > -26, (before, after)


@pytest.mark.parametrize("est", ["gumbel_softmax", "straight_through"])
def test_categorical_vae_improves(est):
    """8 x K=4, 600 steps: the hard-sample test ELBO rises by > 12 nats."""
    _, _, before, after, _ = train("categorical_vae", 600, estimators=est)
    assert after["test_elbo"] > before["test_elbo"] + 12, (before, after)
    assert after["test_elbo"] <= after["test_iwae_100"]


def test_prob_regression_is_calibrated():
    """3000 steps: test NLL within 0.05 nats of the ground truth's; 68% / 95% intervals cover
    within 0.05 / 0.03 of their nominal rate (1000 test points: SE 0.015 / 0.007)."""
    _, _, before, after, _ = train("prob_regression", 3000)
    assert after["test_nll"] < before["test_nll"] - 3
    assert after["test_nll"] - after["true_nll"] < 0.05, after
    assert abs(after["coverage_68"] - 0.6827) < 0.05 and abs(after["coverage_95"] - 0.9545) < 0.03, after


def test_prob_regression_linear_model():
    """hidden=0 is the linear heteroscedastic model; 1500 steps must still beat its initial NLL by 2 nats."""
    prog, _, before, after, _ = train("prob_regression", 1500, build={"hidden": 0})
    assert set(prog.params) == {"mu.W", "mu.b", "z.W", "z.b"}
    assert after["test_nll"] < before["test_nll"] - 2, (before, after)


def test_stochastic_classifier_accuracy():
    """Binary neurons 64-64-64-10 under policy "fast" (ReinMax), 1500 steps: test accuracy >= 0.85
    (chance 0.1)."""
    prog, _, before, after, _ = train("stochastic_classifier", 1500)
    assert {ch.estimator for ch, _ in prog.choices.values()} == {"reinmax"}
    assert after["test_accuracy"] >= 0.85 and before["test_accuracy"] < 0.3, (before, after)


@pytest.mark.parametrize("est", ["score", "enumerate"])
def test_toy_bernoulli_moves_to_the_optimum(est):
    """t = 0.45 (optimum p -> 0), one draw per step, 2000 Adam steps at 0.01: p < 0.1 and the exact
    objective within 0.005 of its infimum 0.2025."""
    _, _, before, after, _ = train("toy_bernoulli", 2000, build={"t": 0.45}, estimators=est)
    assert before["p"] == 0.5
    assert after["p"] < 0.1 and after["exact_objective"] - after["optimum"] < 0.005, after


# --------------------------------------------------------------------------- the training loop
@pytest.fixture(scope="module")
def toy():
    return get("sbn").build(latent=(4,)).compile(dtype=np.float64, estimators="score", seed=0)


X = get("sbn").data()["train"]["x"][:200].astype(np.float64)


def test_fit_resume_is_bit_exact(toy, tmp_path):
    theta0 = toy.theta.copy()
    state0 = toy.state.copy()
    ck = tmp_path / "run.npz"
    full = fit(toy, {"x": X}, Adam(0.01), steps=60, batch_size=16, seed=3, progress=False)
    want = toy.theta.copy()
    toy.theta[:], toy.state[:] = theta0, state0
    fit(toy, {"x": X}, Adam(0.01), steps=30, batch_size=16, seed=3, progress=False, checkpoint=ck)
    toy.theta[:] = 0.0                                   # the checkpoint must restore everything
    toy.state[:] = 0.0
    resumed = fit(toy, {"x": X}, Adam(0.01), steps=60, batch_size=16, seed=3, progress=False, checkpoint=ck,
                  resume=True)
    got, got_loss = toy.theta.copy(), np.array(resumed.loss)
    assert resumed.start_step == 30 and resumed.steps == 60

    def again():   # the uninterrupted run once more (machine.assert_identical)
        toy.theta[:], toy.state[:] = theta0, state0
        h = fit(toy, {"x": X}, Adam(0.01), steps=60, batch_size=16, seed=3, progress=False)
        return np.r_[toy.theta, h.loss]
    assert_identical(np.r_[got, got_loss], np.r_[want, full.loss], again, "resumed run vs uninterrupted run")
    toy.theta[:], toy.state[:] = theta0, state0


def test_fit_eval_history_epochs_and_progress(toy, capsys):
    theta0 = toy.theta.copy()
    hist = fit(toy, {"x": X}, Adam(0.01), epochs=2, batch_size=50, eval_every=3, eval_data={"x": X[:40]},
               progress=True)
    assert hist.steps == 8 and hist.eval_steps == [3, 6, 8] and len(hist.eval) == 3
    assert np.isfinite(hist.step_time) and hist.smoothed().shape == (8,)
    err = capsys.readouterr().err
    assert "loss=" in err and "8/8" in err
    toy.theta[:] = theta0


def test_fit_never_leaves_a_broken_checkpoint(toy, tmp_path):
    theta0 = toy.theta.copy()
    ck = tmp_path / "good.npz"
    fit(toy, {"x": X}, Adam(0.01), steps=5, batch_size=16, progress=False, checkpoint=ck)
    good = np.load(ck)["theta"].copy()
    toy.theta[:] = np.nan                                   # a diverged run
    with pytest.raises(ppl.ModelError, match="non-finite at step 0.*last good checkpoint"):
        fit(toy, {"x": X}, Adam(0.01), steps=10, batch_size=16, progress=False, checkpoint=ck, resume=False,
            eval_every=1, eval_fn=lambda p: 0.0)
    np.testing.assert_array_equal(np.load(ck)["theta"], good)
    from ppl.training.fit import History, _save_checkpoint
    with pytest.raises(ppl.ModelError, match="not writing checkpoint"):   # the writer refuses too
        _save_checkpoint(ck, toy, Adam(0.01), 6, History(), 0)
    np.testing.assert_array_equal(np.load(ck)["theta"], good)
    assert not list(tmp_path.glob("*.tmp*"))
    load_checkpoint(ck, toy, Adam(0.01))
    np.testing.assert_array_equal(toy.theta, good)
    toy.theta[:] = theta0


def test_fit_argument_errors(toy, tmp_path):
    with pytest.raises(ppl.ModelError, match="exactly one of steps=N or epochs=N"):
        fit(toy, {"x": X}, Adam(), progress=False)
    with pytest.raises(ppl.ModelError, match="eval_every needs eval_data"):
        fit(toy, {"x": X}, Adam(), steps=2, eval_every=1, progress=False)
    with pytest.raises(ppl.ModelError, match="ending in .npz"):
        fit(toy, {"x": X}, Adam(), steps=2, checkpoint=tmp_path / "c.bin", progress=False)
    other = get("sbn").build(latent=(5,)).compile(dtype=np.float64, estimators="score")
    fit(other, {"x": X}, Adam(), steps=1, checkpoint=tmp_path / "o.npz", progress=False)
    with pytest.raises(ppl.ModelError, match="different program"):
        fit(toy, {"x": X}, Adam(), steps=2, checkpoint=tmp_path / "o.npz", resume=True, progress=False)


@pytest.mark.parametrize("objective", ["nce", "neg"])
def test_nce_embeddings_recover_planted_neighbours(objective):
    """1500 steps of NCE / negative sampling: neighbour precision >= 0.9 (chance about 0.1) and the
    held-out loss falls by at least 0.3 nats per row (from log 2 = 0.69 for negative sampling)."""
    prog, _, before, after, _ = train("nce_embeddings", 1500, build={"objective": objective})
    assert before["neighbour_precision"] < 0.3 and after["neighbour_precision"] >= 0.9, (before, after)
    assert after["test_loss"] < before["test_loss"] - 0.3


def test_gbrbm_nce_fits_the_mixture():
    """3000 steps: the NCE loss falls below 0.5 (from about 4.4), Gibbs samples of the RBM occupy the
    four mixture components within 0.15 of the data's shares and match its mean within 1.0."""
    prog, _, before, after, _ = train("gbrbm", 3000)
    assert after["test_nce_loss"] < 0.5 < before["test_nce_loss"] - 3, (before, after)
    assert after["occupancy_error"] < 0.15 and after["sample_mean_error"] < 1.0, after
    assert after["data_vs_noise_accuracy"] > 0.8

