"""fit's nopython loop (kernels/cpu/train.py) against the per-step Python loop: the same
parameters, optimiser state, losses and evaluations bit for bit, across epochs, evaluations and
checkpoints, for each bundled optimiser, for a model with and without inputs (the row-fused
program included); the same errors at the same step."""
import numpy as np
import pytest

import ppl
from ppl.training.fit import _Chunks, fit
from ppl.models import sbn, toy_bernoulli

from machine import assert_identical as _identical


def _sbn_prog():
    return sbn.build(latent=(8,)).compile(dtype=np.float64)


def _hand_written_sbn():
    """The one-layer SBN with its costs written by hand (heads, not m.observe): x takes any numbers."""
    with ppl.Model("sbn_by_hand") as m:
        x = m.input("x", 64)
        h1 = ppl.Bernoulli("h1", logits=ppl.Affine(x, 8, name="enc"))
        m.cost("prior", ppl.bernoulli_nll(ppl.param("prior", 8), target=h1))
        m.cost("recon", ppl.bernoulli_nll(ppl.Affine(h1, 64, name="dec"), target=x))
        m.cost("entropy", ppl.log_prob(h1))
    return m.compile(dtype=np.float64)


def _data(n=50, seed=0):
    return {"x": (np.random.default_rng(seed).random((n, 64)) < 0.3).astype(np.float64)}


def _train(make_prog, make_opt, nopython, data, tmp_path=None, **kw):
    prog, opt = make_prog(), make_opt()
    ck = None if tmp_path is None else tmp_path / f"ck_{nopython}.npz"
    h = fit(prog, data, opt, progress=False, nopython=nopython, checkpoint=ck, **kw)
    state = {k: np.array(v) for k, v in opt.state().items() if k != "kind"}
    return prog, h, state


OPTIMIZERS = {"adam": lambda: ppl.optim.Adam(0.01), "sgd": lambda: ppl.optim.SGD(0.05, t0=20.0),
              "momentum": lambda: ppl.optim.Momentum(0.02, mu=0.8),
              "adam-cosine-clip": lambda: ppl.optim.Adam(ppl.optim.cosine_decay(0.01, steps=20, final=0.1, warmup=3),
                                                         clip_norm=0.5)}




@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_nopython_loop_equals_per_step_loop(opt, tmp_path):
    data = _data()
    eval_fn = lambda p: p.loss(data, seed=9)   # noqa: E731
    kw = dict(steps=37, batch_size=8, seed=4, eval_every=10, eval_fn=eval_fn, checkpoint_every=7)
    # 50 rows in batches of 8: epochs of 6 steps, so chunks cross epochs, evaluations and checkpoints

    def run(nopython):
        r = _train(_sbn_prog, OPTIMIZERS[opt], nopython, data, tmp_path, **kw)
        ck = np.load(tmp_path / f"ck_{nopython}.npz")
        return r, ck
    (a, ca), (b, cb) = run(True), run(False)
    assert a[1].eval_steps == b[1].eval_steps == [10, 20, 30, 37]
    assert len(a[1].loss) == 37 and int(a[2]["t"]) == int(b[2]["t"]) == 37
    assert sorted(ca.files) == sorted(cb.files)
    numeric = [k for k in sorted(ca.files) if ca[k].dtype.kind in "biuf"]
    assert all(np.array_equal(ca[k], cb[k]) for k in ca.files if k not in numeric)   # names, kinds

    def values(r, ck):
        return np.concatenate([r[1].loss, r[1].eval, r[0].theta, r[0].state] + [r[2][k].ravel() for k in sorted(r[2])]
                              + [np.ravel(ck[k]).astype(float) for k in numeric])
    _identical(values(a, ca), values(b, cb), lambda: values(*run(False)), f"fit nopython vs per-step ({opt})")


def test_resume_in_the_nopython_loop_continues_the_uninterrupted_run(tmp_path):
    data = _data()

    def uninterrupted():
        full = _train(_sbn_prog, OPTIMIZERS["adam"], True, data, steps=30, batch_size=8, seed=1)
        return np.concatenate([full[1].loss, full[0].theta])
    want = uninterrupted()
    prog, opt, ck = _sbn_prog(), ppl.optim.Adam(0.01), tmp_path / "ck.npz"
    fit(prog, data, opt, steps=13, batch_size=8, seed=1, progress=False, nopython=True, checkpoint=ck)
    prog2, opt2 = _sbn_prog(), ppl.optim.Adam(0.01)
    h = fit(prog2, data, opt2, steps=30, batch_size=8, seed=1, progress=False, nopython=True, checkpoint=ck,
            resume=True)
    _identical(np.concatenate([h.loss, prog2.theta]), want, uninterrupted, "resumed nopython run vs uninterrupted")


@pytest.mark.parametrize("nopython", [True, False])
def test_a_second_fit_continues_the_first_with_new_noise(nopython, tmp_path):
    """fit twice (13 + 17 steps, one optimiser) trains exactly as one fit of 30 steps: the second
    continues the step counter, its batches and noise; a resumed second phase too. seed= or
    step= given starts where asked: seed=0 again replays the first phase's losses."""
    data = _data()

    def one_run():
        full = _train(_sbn_prog, OPTIMIZERS["adam"], nopython, data, steps=30, batch_size=8)
        return np.concatenate([full[1].loss, full[0].theta])
    want = one_run()
    prog, opt = _sbn_prog(), ppl.optim.Adam(0.01)
    h1 = fit(prog, data, opt, steps=13, batch_size=8, progress=False, nopython=nopython)
    ck = tmp_path / "phase2.npz"
    fit(prog, data, opt, steps=5, batch_size=8, progress=False, nopython=nopython, checkpoint=ck)   # interrupted
    assert prog.steps_trained == 18
    prog2, opt2 = _sbn_prog(), ppl.optim.Adam(0.01)
    h2 = fit(prog2, data, opt2, steps=17, batch_size=8, progress=False, nopython=nopython, checkpoint=ck, resume=True)
    assert prog2.steps_trained == 30 and len(h2.loss) == 17
    got = np.concatenate([h1.loss, h2.loss, prog2.theta])
    _identical(got, want, one_run, f"two fits vs one (nopython={nopython})")
    again = fit(_sbn_prog(), data, ppl.optim.Adam(0.01), steps=13, batch_size=8, progress=False, seed=0)
    np.testing.assert_array_equal(again.loss, h1.loss)                     # an explicit seed: from step 0
    later = fit(_sbn_prog(), data, ppl.optim.Adam(0.01), steps=3, batch_size=8, progress=False, step=13)
    assert not np.array_equal(later.loss, h1.loss[:3])
    with pytest.raises(ppl.ModelError, match="fit: step must be"):
        fit(prog, data, opt, steps=1, progress=False, step=-1)


def test_model_without_inputs_row_fused_program():
    make = lambda: toy_bernoulli.build().compile()   # noqa: E731   (no inputs; the row-fused lowering)
    a = _train(make, OPTIMIZERS["adam"], True, None, steps=25, batch_size=4, seed=2)
    b = _train(make, OPTIMIZERS["adam"], False, None, steps=25, batch_size=4, seed=2)
    np.testing.assert_array_equal(a[1].loss, b[1].loss)
    np.testing.assert_array_equal(a[0].theta, b[0].theta)


@pytest.mark.parametrize("value, says", [(1e308, "a value became non-finite at step 5: Bernoulli 'h1'"),
                                          (1e200, "the loss or its gradient became non-finite at step 6")])
def test_a_failing_step_is_reported_alike(value, says):
    """A finite but huge data row (drawn first at step 5) of an input no likelihood observes (an
    observed input's support is checked where the data enters): the step's own check of the logits
    raises (1e308 overflows them), or the loss is non-finite (1e200); both loops name the same
    step and stop before its update. So does the loop that splits each batch over two threads,
    although a raise inside Numba's parallel loop is dropped there (train_chunk_rows runs the
    step again, half after half, to raise it)."""
    data = _data()
    data["x"][41, :] = value
    out = []
    for nopython, split in ((True, False), (False, False), (True, True)):
        prog = _hand_written_sbn()   # its costs by hand: x is not observed data (whose support is checked)
        with pytest.raises(ppl.ModelError) as e:
            fit(prog, data, ppl.optim.SGD(0.01), steps=40, batch_size=8, progress=False, nopython=nopython,
                split_rows=split)
        out.append((str(e.value), prog.theta.copy()))
    assert says in out[0][0] and out[0][0] == out[1][0] == out[2][0]
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_allclose(out[2][1], out[0][1], rtol=1e-12, atol=1e-14)   # the halves' sums round apart


@pytest.mark.parametrize("est, samples", [("disarm", 1), (("score", {"baseline": "moving_average"}), 2)],
                         ids=["disarm", "score-ma-K2"])
def test_split_rows_trains_as_the_whole_batch(est, samples):
    """split_rows=True (each batch in two halves at once: kernels/cpu_train.train_chunk_rows)
    trains as the unsplit loop, to the rounding of the halves' combination: an odd batch
    (halves of 5 and 4 rows), noise drawn by global row (DisARM's pair of rows; K = 2 draws per
    data row, so the second half starts at drawn row 5 K) and the estimator state merged
    (score's moving-average baseline). A wrong row offset or a dropped state change would move
    the parameters far more than 1e-9."""
    data = _data()
    out = []
    for split in (False, True):
        prog = sbn.build(latent=(8,)).compile(estimators=est, samples=samples, dtype=np.float64)
        h = fit(prog, data, ppl.optim.Adam(0.01), steps=30, batch_size=9, seed=3, progress=False, nopython=True,
                split_rows=split)
        out.append((np.array(h.loss), prog.theta.copy(), prog.state.copy()))
    (la, ta, sa), (lb, tb, sb) = out
    np.testing.assert_allclose(lb, la, rtol=1e-9)
    np.testing.assert_allclose(tb, ta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sb, sa, rtol=1e-9)
    if samples == 2:   # the baseline's state (mean, seeded) moved: merged, not dropped
        assert sa.size == 2 and np.all(sa != 0)


def test_split_rows_rule_and_errors(monkeypatch):
    """Auto: split from batch 128, on two threads or more, when no weight matrix exceeds 256 x 256
    (784 x 200: ppl's parts serve the products as well) or the batch evaluates SPLIT_MIN_ROWS rows,
    and the nopython loop may run and the step's work arrays fit Numba's parallel loop; an explicit
    value is checked."""
    import types

    import numba

    from ppl.training.threads import SPLIT_MAX_WEIGHTS, SPLIT_MIN_ROWS, split_rows_rule
    from ppl.kernels.native import blas

    def prog(weights, target="cpu", rows=1, work=4):
        return types.SimpleNamespace(target=target, module=types.SimpleNamespace(step_rows=None), rows_per_data_row=rows,
                                     params={"q1.W": np.zeros(weights), "q1.b": np.zeros(weights[1])},
                                     workspace=lambda B: ((np.zeros((B, 1)),) * work, (np.zeros(B),)))
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(blas, "cores", lambda: 2)
    small, big = prog((64, 32)), prog((784, 200))
    assert np.prod((256, 256)) == SPLIT_MAX_WEIGHTS
    assert split_rows_rule(small, 256, None, None) and split_rows_rule(small, 1000, None, True)
    assert split_rows_rule(small, 128, None, None) and not split_rows_rule(small, 127, None, None)   # halves too small to pay
    assert not split_rows_rule(small, 256, None, False)            # the per-step loop asked for
    assert not split_rows_rule(big, 256, None, None)               # products for ppl's parts
    assert split_rows_rule(big, SPLIT_MIN_ROWS, None, None) and not split_rows_rule(big, SPLIT_MIN_ROWS - 1, None, None)
    rows3 = prog((784, 200), rows=3)                               # REBAR's 3 rows a drawn row
    assert split_rows_rule(rows3, 134, None, None) and not split_rows_rule(rows3, 133, None, None)
    assert not split_rows_rule(prog((64, 32), "cuda"), 256, None, None)
    assert split_rows_rule(big, 4, True, None) and not split_rows_rule(small, 256, False, None)
    assert not split_rows_rule(small, 256, None, None, 2) and split_rows_rule(small, 256, None, None, 1)   # BLAS asked for
    # a step with more work arrays than Numba's parallel loop takes (a summed-out chain's): never split
    from ppl.kernels import numba_compat
    many = prog((64, 32), work=numba_compat.parfor_max_tuple_size() + 1)
    assert not split_rows_rule(many, 256, None, None) and not split_rows_rule(many, 256, None, True)
    with pytest.raises(ppl.ModelError, match="NUMBA_PARFOR_MAX_TUPLE_SIZE"):
        split_rows_rule(many, 256, True, None)
    monkeypatch.setattr(blas, "cores", lambda: 1)
    assert not split_rows_rule(small, 256, None, None)
    for asked, B, nopython, says in [("yes", 256, None, "True, False or None"), (True, 1, None, "batch_size >= 2"),
                                     (True, 256, False, "nopython loop")]:
        with pytest.raises(ppl.ModelError, match=says):
            split_rows_rule(small, B, asked, nopython)
    with pytest.raises(ppl.ModelError, match="two thread pools"):
        split_rows_rule(small, 256, True, None, 2)
    with pytest.raises(ppl.ModelError, match="CUDA program"):
        split_rows_rule(prog((64, 32), "cuda"), 256, True, None)


@pytest.mark.parametrize("nopython", [True, False])
def test_nan_in_any_row_is_refused_before_training(nopython):
    """Both loops check every row of the data before the first step (the per-step loop too, not
    only the rows its batches reach)."""
    data = _data()
    data["x"][41, 3] = np.nan
    prog = _sbn_prog()
    before = prog.theta.copy()
    with pytest.raises(ppl.ModelError, match="input 'x' has non-finite values"):
        fit(prog, data, ppl.optim.Adam(0.01), steps=3, batch_size=8, progress=False, nopython=nopython)
    np.testing.assert_array_equal(prog.theta, before)


def test_the_per_step_loop_checks_the_data_once(monkeypatch):
    prog, calls = _sbn_prog(), []
    real = type(prog)._inputs

    def counted(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)
    monkeypatch.setattr(type(prog), "_inputs", counted)
    fit(prog, _data(), ppl.optim.Adam(0.01), steps=6, batch_size=8, progress=False, nopython=False)
    assert len(calls) == 1


def _loops_taken(monkeypatch) -> list:
    """Whether each fit from now on takes the nopython loop (True) or the per-step one, appended to
    the list returned; the loop never counts as compiled already."""
    seen = []
    real = _Chunks.make.__func__

    def spy(cls, *a):
        loop = real(cls, *a)
        seen.append(loop is not None)
        return loop

    monkeypatch.setattr(_Chunks, "make", classmethod(spy))
    monkeypatch.setattr(_Chunks, "compiled", lambda self: False)
    return seen


def test_auto_takes_the_loop_only_when_it_pays(monkeypatch):
    prog, data = _sbn_prog(), _data()
    seen = _loops_taken(monkeypatch)
    fit(prog, data, ppl.optim.Adam(0.01), steps=5, batch_size=8, progress=False)   # short, not compiled
    monkeypatch.setattr(_Chunks, "NEW_SIGNATURE_STEPS", 5)
    fit(prog, data, ppl.optim.Adam(0.01), steps=5, batch_size=8, progress=False)   # long enough
    fit(prog, data, ppl.optim.Adam(0.01), steps=5, batch_size=8, progress=False, nopython=False)
    assert seen == [False, True, False]


def test_auto_takes_the_loop_once_a_programs_short_runs_add_up(monkeypatch):
    """Short fits of one program, each under NEW_SIGNATURE_STEPS, take the per-step loop until their
    steps together reach it; the next fit compiles the loop (and a new program starts from none)."""
    prog, data = _sbn_prog(), _data()
    seen = _loops_taken(monkeypatch)
    monkeypatch.setattr(_Chunks, "NEW_SIGNATURE_STEPS", 14)
    for _ in range(3):
        fit(prog, data, ppl.optim.Adam(0.01), steps=6, batch_size=8, progress=False)   # 6 steps each
    fit(_sbn_prog(), data, ppl.optim.Adam(0.01), steps=6, batch_size=8, progress=False)
    assert seen == [False, False, True, False]


def test_nopython_true_refuses_a_user_optimiser():
    class Mine(ppl.optim.SGD):
        name = "sgd"
    with pytest.raises(ppl.ModelError, match="nopython=True needs"):
        fit(_sbn_prog(), _data(), Mine(0.01), steps=3, batch_size=8, progress=False, nopython=True)


def test_blas_threads_rule_and_restore(monkeypatch):
    """fit's BLAS threads: one when ppl chose the one-thread default, with ppl's own parts on every
    core Numba may use, whatever the batch; an explicit count is validated and takes no parts;
    the counts in force before the fit are restored after it."""
    import numba
    from ppl.training.threads import blas_threads_rule, parts_rule
    from ppl.kernels.native import blas, parts
    if blas.get_threads() is None:
        pytest.skip("no OpenBLAS of NumPy's to set (the np.dot fallback)")
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    prog = sbn.build(latent=(32,)).compile(estimators="score", dtype=np.float32)
    cores = blas.cores()
    monkeypatch.setattr(blas, "DEFAULTED", True)
    assert blas_threads_rule(prog, None) == 1
    assert parts_rule(prog, None, 8) == 1                  # 64 x 32 weights, 4k parameters: under the grain
    wide = sbn.build(latent=(256,)).compile(estimators="score", dtype=np.float32)
    assert parts_rule(wide, None, 64) == max(1, min(cores, numba.get_num_threads()))   # 64 x 256 at 64 rows
    assert parts_rule(wide, None, 8) == 1
    assert parts_rule(wide, 1, 64) == 1 and parts_rule(wide, 2, 64) == 1   # a count the user gave: none beside it
    prev = parts.set_parts(3)
    try:
        fit(prog, {"x": X}, ppl.optim.Adam(1e-3), steps=3, batch_size=8, progress=False)
        assert parts.get_parts() == 3                      # restored
    finally:
        parts.set_parts(prev)
    assert blas_threads_rule(prog, 3) == 3
    with pytest.raises(ppl.ModelError, match="blas_threads"):
        blas_threads_rule(prog, 0)
    monkeypatch.setattr(blas, "DEFAULTED", False)          # the user set OPENBLAS_NUM_THREADS
    assert blas_threads_rule(prog, None) is None and parts_rule(wide, None, 64) == 1
    before = blas.get_threads()
    fit(prog, {"x": X}, ppl.optim.Adam(1e-3), steps=3, batch_size=8, progress=False, blas_threads=before + 1)
    assert blas.get_threads() == before
