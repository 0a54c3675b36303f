"""fit(..., track_variance=N): the gradient variance per layer along training (History.variance),
measured at the parameters of the step and the estimators' state as training has it, without
changing the run: the same parameters, estimator state, optimiser state and losses bit for bit as
without it; it agrees with a separate ppl.diagnostics.gradient_stats at the same parameters and
batch; it goes into the checkpoint and continues on resume; bad arguments name their fix."""
import numpy as np
import pytest

import ppl
from ppl.errors import ModelError
from ppl.models import sbn
from ppl.training.fit import fit
from ppl.training.history import History
from ppl.training.variance import layer_of

from machine import assert_identical

STEPS, EVERY, BATCH = 300, 100, 32


def _data(n=200, seed=0):
    return {"x": (np.random.default_rng(seed).random((n, 64)) < 0.3).astype(np.float64)}


def _model():
    return sbn.build(latent=(8,))


def _train(model=None, estimator="score", steps=STEPS, **kw):
    prog = (model or _model()).compile(dtype=np.float64, estimators=estimator, seed=0)
    opt = ppl.optim.Adam(1e-2)
    hist = fit(prog, _data(), opt, steps=steps, batch_size=BATCH, progress=False, blas_threads=1,
               split_rows=False, keep_losses=True, **kw)
    return prog, opt, hist


def _close(a, se_a, b, se_b, k=4.0):
    return abs(a - b) <= k * np.hypot(se_a, se_b)


def test_the_recorded_variance_agrees_with_gradient_stats_at_the_same_parameters():
    """A two-layer SBN (q1, p0, prior) trained 300 steps by the score function (its moving-average
    baseline is estimator state) with the variance measured every 100 steps over 400 draws. At the
    final parameters and on the recorded batch (History.variance['rows']) a separate
    gradient_stats (a fresh program: its baseline warmed from its initial value, not from
    training's) measures each layer's trace of the gradient's covariance; the last record agrees
    with it within 4 combined standard errors (gradient_stats gives no SE of the trace: the
    record's, scaled to its value, as the same number of draws of the same law has the same
    relative SE). The two share their draws' seeds (gradient_draws' rule), so the check is
    conservative about noise; what it detects: a record at other parameters (the step-0 record,
    at the initial ones, fails it), a record 1.5 times too large (fails it: shown), layers
    grouped otherwise (their keys compared)."""
    model = _model()
    prog, _, hist = _train(model, track_variance=EVERY, variance_draws=400)
    v = hist.variance
    assert list(v["step"]) == [0, 100, 200, 300] and v["draws"] == 400 and v["step"].dtype.kind == "i"
    assert list(v["layers"]) == ["q1", "p0", "prior"]
    for rec in v["layers"].values():
        assert rec["var"].shape == rec["se"].shape == (4,) and np.all(rec["var"] > 0) and np.all(rec["se"] > 0)
    rows = v["rows"]
    assert rows.shape == (BATCH,)
    batch = {"x": _data()["x"][rows]}
    st, = ppl.diagnostics.gradient_stats(model, batch, ["score"], draws=400, params=prog, exact=False)
    sums = {}
    for name, var in st.var.items():
        sums[layer_of(name)] = sums.get(layer_of(name), 0.0) + float(var.sum())
    assert list(sums) == list(v["layers"])
    wrong_scale, wrong_params = [], []
    for layer, rec in v["layers"].items():
        a, se_a, b = rec["var"][-1], rec["se"][-1], sums[layer]
        se_b = se_a * b / a
        print(f"{layer}: recorded {a:.4g} +- {se_a:.2g}, gradient_stats {b:.4g}; at step 0 {rec['var'][0]:.4g} "
              f"+- {rec['se'][0]:.2g}")
        assert _close(a, se_a, b, se_b), (layer, a, se_a, b)
        wrong_scale.append(_close(1.5 * a, 1.5 * se_a, b, se_b))
        wrong_params.append(_close(rec["var"][0], rec["se"][0], b, se_b))
    assert not all(wrong_scale), "a record 1.5 times too large passes: the check cannot see it"
    assert not all(wrong_params), "the record at the initial parameters passes: the check cannot see it"


@pytest.mark.parametrize("nopython", [True, False])
def test_tracking_leaves_the_run_bit_for_bit_as_without(nopython):
    """Parameters, estimator state, optimiser state, every loss and the evaluations are the same
    bits with and without tracking (every 70 steps: a measurement inside a chunk's aim, and at the
    last step), in the nopython loop and the per-step one."""
    def run(**kw):
        ev = {"eval_every": 100, "eval_fn": lambda p: float(p.theta.sum())}
        return _train(nopython=nopython, **ev, **kw)
    p0, o0, h0 = run()
    p1, o1, h1 = run(track_variance=70, variance_draws=8)
    assert h0.variance is None
    assert list(h1.variance["step"]) == [0, 70, 140, 210, 280, 300]
    again = lambda: run()[0].theta   # noqa: E731
    assert_identical(p1.theta, p0.theta, again, "parameters")
    assert np.array_equal(p1.state, p0.state) and np.array_equal(p1.grad_buffer, p0.grad_buffer)
    for k, a in o0.state().items():
        assert np.array_equal(np.asarray(o1.state()[k]), np.asarray(a)), k
    assert np.array_equal(h1.loss, h0.loss) and h1.eval == h0.eval and h1.eval_steps == h0.eval_steps
    assert p1.steps_trained == p0.steps_trained == STEPS


@pytest.mark.parametrize("kw, words", [
    (dict(track_variance=0), ["track_variance", ">= 1", "track_variance=100"]),
    (dict(track_variance=-5), ["track_variance", ">= 1"]),
    (dict(track_variance=2.5), ["track_variance", "integer", "track_variance=100"]),
    (dict(track_variance=True), ["track_variance", "integer"]),
    (dict(track_variance="10"), ["track_variance", "integer"]),
    (dict(track_variance=10, variance_draws=1), ["variance_draws", ">= 2", "two draws", "variance_draws=100"]),
    (dict(track_variance=10, variance_draws=50.0), ["variance_draws", "integer", "variance_draws=100"]),
    (dict(track_variance=10, variance_draws=None), ["variance_draws", "integer"]),
])
def test_bad_arguments_name_the_argument_and_the_fix(kw, words):
    prog = _model().compile(dtype=np.float64, estimators="score")
    theta = prog.theta.copy()
    with pytest.raises(ModelError) as e:
        fit(prog, _data(), ppl.optim.Adam(1e-2), steps=10, progress=False, **kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert np.array_equal(prog.theta, theta)   # refused before any step


def test_the_record_survives_history_state_and_a_resumed_run(tmp_path):
    """History.state / from_state keep the record exactly; a run stopped at step 150 and resumed
    to 300 from its checkpoint keeps the earlier records and measures the same values at the steps
    it shares with the uninterrupted run (the same parameters and state there)."""
    _, _, whole = _train(track_variance=EVERY, variance_draws=16)
    h2 = History.from_state({**whole.state(), "step": np.array(whole.steps)}, "test")
    assert h2.variance["draws"] == 16 and np.array_equal(h2.variance["rows"], whole.variance["rows"])
    assert np.array_equal(h2.variance["step"], whole.variance["step"])
    for k, rec in whole.variance["layers"].items():
        assert np.array_equal(h2.variance["layers"][k]["var"], rec["var"])
        assert np.array_equal(h2.variance["layers"][k]["se"], rec["se"])
    assert History.from_state({**History().state(), "step": np.array(0)}, "test").variance is None

    ck = tmp_path / "ck.npz"
    _train(steps=150, checkpoint=ck, track_variance=EVERY, variance_draws=16)
    prog = _model().compile(dtype=np.float64, estimators="score", seed=0)
    resumed = fit(prog, _data(), ppl.optim.Adam(1e-2), steps=STEPS, batch_size=BATCH, progress=False,
                  blas_threads=1, split_rows=False, keep_losses=True, checkpoint=ck, resume=True,
                  track_variance=EVERY, variance_draws=16)
    v, w = resumed.variance, whole.variance
    assert list(v["step"]) == [0, 100, 150, 200, 300]
    shared = np.isin(v["step"], w["step"])
    for k, rec in w["layers"].items():
        assert np.array_equal(v["layers"][k]["var"][shared], rec["var"]), k
    fresh = _model().compile(dtype=np.float64, estimators="score", seed=0)
    theta = fresh.theta.copy()
    for kw, words in [(dict(batch_size=BATCH, variance_draws=32), "variance_draws=16"),
                      (dict(batch_size=16, variance_draws=16), "another batch")]:
        with pytest.raises(ModelError, match=words):   # refused before the checkpoint is loaded
            fit(fresh, _data(), ppl.optim.Adam(1e-2), steps=STEPS, progress=False, checkpoint=ck, resume=True,
                track_variance=EVERY, **kw)
        assert np.array_equal(fresh.theta, theta)


def test_a_model_without_inputs_is_measured_on_batch_size_draws():
    from ppl.models import toy_bernoulli
    prog = toy_bernoulli.build().compile(dtype=np.float64, estimators="score")
    hist = fit(prog, None, ppl.optim.Adam(1e-2), steps=40, batch_size=4, progress=False, track_variance=20,
               variance_draws=10)
    v = hist.variance
    assert v["rows"] is None and list(v["step"]) == [0, 20, 40] and list(v["layers"]) == ["theta"]
    h2 = History.from_state({**hist.state(), "step": np.array(40)}, "test")
    assert h2.variance["rows"] is None and np.array_equal(h2.variance["layers"]["theta"]["var"],
                                                          v["layers"]["theta"]["var"])


def test_a_sweep_row_holds_its_run_s_record():
    """ppl.distributed.sweep(..., track_variance=N): each run's row holds History.variance as
    'variance' (what ppl compare plots)."""
    from ppl.training.distributed import sweep
    x = _data(100)["x"]
    res = sweep(lambda: sbn.build(latent=(8,)), ["score"], 1, settings={"steps": 20, "batch": 8, "dtype": "float64"},
                data={"train": {"x": x}, "test": {"x": x[:20]}}, track_variance=10, progress=False)
    r, = res
    assert r["error"] is None and list(r["variance"]["step"]) == [0, 10, 20]
    assert list(r["variance"]["layers"]) == ["q1", "p0", "prior"] and r["variance"]["draws"] == 100


@pytest.mark.cuda
def test_on_the_cuda_target_tracking_leaves_the_run_as_without_and_measures_as_on_the_cpu():
    """The CUDA program keeps its parameters and state on the device (in the simulator without a
    GPU): the measurements read and put them back there, so the run ends as without them, and
    every draw starts from the warmed state there, so the record equals the CPU program's (a draw
    that started from the previous draw's state would differ)."""
    import small_models   # tests/: the graphs the tests share

    def run(target, **kw):
        prog = small_models.two_layer_sbn("sbn_track_cuda").compile(dtype=np.float64, seed=2, target=target,
                                                                  estimators="score")
        hist = fit(prog, small_models.DATA, ppl.optim.Adam(1e-2), steps=3, batch_size=2, progress=False, **kw)
        prog.pull()
        return prog, hist
    p0, _ = run("cuda")
    p1, h1 = run("cuda", track_variance=3, variance_draws=2)
    _, h2 = run("cpu", track_variance=3, variance_draws=2)
    assert list(h1.variance["step"]) == [0, 3] and list(h1.variance["layers"]) == ["a1", "a2", "dec"]
    assert np.array_equal(p1.theta, p0.theta) and np.array_equal(p1.state, p0.state)
    for k, rec in h2.variance["layers"].items():
        np.testing.assert_allclose(h1.variance["layers"][k]["var"], rec["var"], rtol=1e-7, err_msg=k)
