"""fit's own parallel setting, timed against one thread while the run goes on
(ppl/training/threads.py): the chooser's decisions on scripted step times, when fit uses it, and
that choosing changes a split run's numbers only in their rounding."""
import numpy as np
import pytest

import ppl
from ppl.models import sbn
from ppl.training import threads as T
from ppl.training import fit as fit_module
from ppl.training.fit import fit, plan_fit


def chooser():
    applied = []
    ch = T.ThreadChooser([("parallel", lambda: applied.append("parallel")), ("one", lambda: applied.append("one"))])
    ch.apply()
    return ch, applied


def feed(ch, per_step, calls, steps=10):
    """`calls` runs of `steps` steps, each step taking per_step(setting label, call) seconds;
    returns {label: seconds spent}."""
    spent = {"parallel": 0.0, "one": 0.0}
    for c in range(calls):
        s = steps * per_step(ch.label, c)
        spent[ch.label] += s
        ch.record(steps, s)
    return spent


def test_a_faster_parallel_setting_is_kept_and_checked_ever_more_rarely():
    ch, applied = chooser()
    feed(ch, lambda lab, c: 0.001 if lab == "parallel" else 0.002, 3000)
    assert ch.label == "parallel" and all(win == "parallel" for _, _, win in ch.log)
    assert ch.hold == T.MAX_HOLD_SECONDS        # doubled after every probe that confirmed it
    per = ch.log[0][1]
    assert per["parallel"] == pytest.approx(0.001) and per["one"] == pytest.approx(0.002)
    assert applied[:2] == ["one", "parallel"]   # the untimed first run on one thread, then the probe


def test_under_load_one_thread_wins_and_the_parallel_setting_returns_when_the_load_ends():
    ch, _ = chooser()
    busy = 2000        # calls under load (the parallel setting 2.2x slower), then a quiet machine

    def per_step(lab, c):
        if c < busy:
            return 0.0022 if lab == "parallel" else 0.001
        return 0.0006 if lab == "parallel" else 0.001

    spent = feed(ch, per_step, busy)
    assert ch.label == "one" and ch.log[-1][2] == "one"
    # the losing setting's probes cost a few percent of the run's time
    assert spent["parallel"] < 0.06 * (spent["parallel"] + spent["one"]), spent
    n_before = len(ch.log)
    # once the load is gone, the next probe (within MAX_HOLD_SECONDS of steps) takes the parallel one back
    feed(ch, lambda lab, c: per_step(lab, busy + c), int(T.MAX_HOLD_SECONDS / 0.01) + 100)
    assert ch.label == "parallel" and any(win == "parallel" for _, _, win in ch.log[n_before:])


def test_a_probe_ends_after_two_segments_when_the_difference_is_clear():
    """Segments run parallel, one, one, parallel; when the first two differ by CLEAR times, the
    probe decides there (the parallel setting is not run again beside a load), else it runs all
    four. Each segment here is one run of PROBE_SECONDS."""
    def segments(ratio):
        ch, _ = chooser()
        ch.record(1, 1.0)   # the untimed first run
        seen = []
        while not ch.log:
            seen.append(ch.label)
            per = ratio * 0.001 if ch.label == "parallel" else 0.001
            ch.record(int(round(T.PROBE_SECONDS / per)) + 1, T.PROBE_SECONDS + per)
        return seen, ch.log[0][2]
    assert segments(T.CLEAR) == (["parallel", "one"], "one")
    assert segments(1 / T.CLEAR) == (["parallel", "one"], "parallel")
    assert segments(0.98 * T.CLEAR) == (["parallel", "one", "one", "parallel"], "one")
    assert segments(1.02 / T.CLEAR) == (["parallel", "one", "one", "parallel"], "parallel")


def test_a_parallel_setting_must_win_by_the_margin():
    ch, _ = chooser()
    feed(ch, lambda lab, c: (1 - T.MARGIN / 2) * 0.001 if lab == "parallel" else 0.001, 200)
    assert ch.log and ch.log[0][2] == "one"


def test_the_first_run_of_steps_is_not_timed_and_probes_cut_chunks():
    ch, _ = chooser()
    assert ch.steps_cap(10_000) == 10_000   # no time per step seen yet
    ch.record(5, 100.0)                     # a compile: not timed
    assert ch.probing and ch.steps_cap(10_000) == 1
    ch.record(10, 0.01)                     # the parallel setting: 1 ms a step
    assert ch.steps_cap(10_000) == int(T.PROBE_SECONDS / 0.001)
    feed(ch, lambda lab, c: 0.001 if lab == "parallel" else 0.004, 100)
    assert not ch.probing and ch.steps_cap(10_000) == 10_000
    ch._start_probe()                       # probing one thread: cut at its own time per step
    ch._switch(1)
    assert ch.steps_cap(10_000) == T.FIRST_CHUNK
    ch.record(T.FIRST_CHUNK, T.FIRST_CHUNK * 0.004)
    assert ch.steps_cap(10_000) == int(T.PROBE_SECONDS / 0.004)
    ch._start_probe()                       # a segment starts with FIRST_CHUNK steps, however fast the
    assert ch.label == "parallel" and ch.steps_cap(10_000) == T.FIRST_CHUNK   # setting ran last time
    ch.record(T.FIRST_CHUNK, T.FIRST_CHUNK * 0.0015)  # a load came: 1.5 ms a step now, the segment goes on
    assert ch.label == "parallel" and ch.steps_cap(10_000) == int(T.PROBE_SECONDS / 0.0015)
    with pytest.raises(ValueError):
        T.ThreadChooser([("only", lambda: None)])


def test_the_probe_waits_until_the_untimed_first_runs_have_lasted_warm_seconds():
    """Short first runs (a cached step: no compile) stay on one thread, untimed, until they add up to
    WARM_SECONDS, so that another library's spinning threads have gone to sleep before the first probe
    times the parallel setting; a compile as long as that ends the warm-up at once."""
    ch, _ = chooser()
    quick = T.WARM_SECONDS / 4
    for _ in range(3):
        ch.record(16, quick)
        assert ch.label == "one" and not ch.log   # untimed, on one thread
    ch.record(16, 2 * quick)                              # WARM_SECONDS passed: the probe starts
    assert ch.label == "parallel" and ch.probing and not ch.log
    ch2, _ = chooser()
    ch2.record(5, T.WARM_SECONDS)                         # a compile that long: the probe at once
    assert ch2.label == "parallel"


def test_the_first_parallel_run_calls_its_hook_once_and_is_not_timed_when_it_measured():
    """`first_parallel` (fit: the parts' ways of cutting each product, measured) is called once,
    after the first run under the parallel setting once the warm-up is over; a hook that measured
    something (True) leaves that run out of the probe, one that did not (False) lets it count."""
    for measured in (True, False):
        calls = []
        ch = T.ThreadChooser([("parallel", lambda: None), ("one", lambda: None)],
                             first_parallel=lambda: calls.append(1) or measured)
        ch.record(5, 100.0)                     # the untimed first run, on one thread
        assert ch.label == "parallel" and not calls
        ch.record(2, 0.002)                     # the first parallel run
        assert calls == [1]
        assert (ch.seg_steps, ch.last[0]) == ((0, None) if measured else (2, 0.001))
        feed(ch, lambda lab, c: 0.001 if lab == "parallel" else 0.004, 100)
        assert calls == [1] and ch.winner == 0


def _sbn(dtype=np.float32):
    return sbn.build(latent=(32,)).compile(estimators="disarm", samples=2, dtype=dtype, seed=3)


def test_fit_times_only_the_settings_it_chose_itself(monkeypatch):
    from ppl.kernels.native import blas
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    prog = _sbn()
    opt = ppl.optim.Adam(1e-3)
    import numba
    if blas.get_threads() is not None and blas.cores() >= 2 and numba.get_num_threads() >= 2:
        monkeypatch.setattr(blas, "DEFAULTED", True)
        plan = plan_fit(prog, {"x": X}, opt, steps=10, batch_size=32)      # under the parts' grain
        assert (plan.choose, plan.blas_threads, plan.parts) == (None, 1, 1)
        wide = sbn.build(latent=(256,)).compile(estimators="disarm", dtype=np.float32, seed=3)
        plan = plan_fit(wide, {"x": X}, opt, steps=10, batch_size=64)
        assert (plan.choose, plan.blas_threads, plan.parts) == ("parts", 1, min(blas.cores(), numba.get_num_threads()))
        plan = plan_fit(wide, {"x": X}, opt, steps=10, batch_size=64, blas_threads=2)
        assert (plan.choose, plan.parts) == (None, 1)
        plan = plan_fit(prog, {"x": X}, opt, steps=10, batch_size=256)   # the halves at once, no parts inside
        assert (plan.choose, plan.parts) == ("split", 1)
        monkeypatch.setattr(blas, "DEFAULTED", False)
    assert plan_fit(prog, {"x": X}, opt, steps=10, batch_size=32).choose is None
    assert plan_fit(prog, {"x": X}, opt, steps=10, batch_size=256, split_rows=True).choose is None
    assert plan_fit(prog, {"x": X}, opt, steps=10, batch_size=256, split_rows=False).choose is None


def test_a_timed_split_trains_what_a_fixed_split_does_up_to_rounding(monkeypatch):
    """The automatic row split, its setting flipping between the halves at once and the whole
    batch on one thread every few steps, gives the parameters and losses of a fixed
    split_rows=True up to the rounding of the halves' combination (the same draws). In float64: a
    float32 rounding difference flips a Bernoulli draw now and then over 120 steps, and the two
    runs then part by a step's update."""
    import numba
    from ppl.kernels.native import blas
    if numba.get_num_threads() < 2 or blas.cores() < 2:
        pytest.skip("the automatic split needs two threads")
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float64)
    fixed = _sbn(np.float64)
    h0 = fit(fixed, {"x": X}, ppl.optim.Adam(1e-3), steps=120, batch_size=256, seed=5, progress=False,
             split_rows=True, nopython=True)
    monkeypatch.setattr(T, "PROBE_SECONDS", 0.0)      # every chunk a probe segment: many flips
    monkeypatch.setattr(T, "HOLD_SECONDS", 0.0)
    monkeypatch.setattr(T, "WARM_SECONDS", 0.0)       # the probes from the first chunk on
    timed = _sbn(np.float64)
    plan = plan_fit(timed, {"x": X}, ppl.optim.Adam(1e-3), steps=120, batch_size=256, nopython=True)
    assert plan.split and plan.choose == "split"
    h1 = fit(timed, {"x": X}, ppl.optim.Adam(1e-3), steps=120, batch_size=256, seed=5, progress=False,
             nopython=True)
    assert len(h1.threads) >= 2 and set(h1.threads[0][1]) == {"the halves at once", "the whole batch on one thread"}
    assert not np.array_equal(fixed.theta, _sbn(np.float64).theta)   # trained
    np.testing.assert_allclose(timed.theta, fixed.theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(h1.loss), np.asarray(h0.loss), rtol=1e-12)
    assert numba.get_num_threads() >= 2               # restored after the fit


def test_the_whole_batch_setting_of_a_split_loop_is_the_unsplit_loop_bit_for_bit():
    """A split loop set to the whole batch (train_chunk_rows with B1 = 0) trains exactly what
    the unsplit loop (train_chunk) trains: same draws, same gradient, same parameters."""
    from ppl.training.data import Batches
    from ppl.training.fit import _Chunks
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    progs = [_sbn(), _sbn()]
    runs = []
    for prog, split in zip(progs, (True, False)):
        loop = _Chunks(prog, ppl.optim.Adam(1e-3), Batches({"x": X}, 256, seed=5, dtype=np.float32), 256,
                       np.uint64(5), split=split)
        if split:
            loop.set_whole(True)
        losses, failed = loop.run(0, 30)
        assert failed is None
        runs.append(np.array(losses))
    assert np.array_equal(progs[0].theta, progs[1].theta) and np.array_equal(*runs)
    assert not np.array_equal(progs[0].theta, _sbn().theta)


def test_timed_parts_train_what_one_thread_does_up_to_rounding(monkeypatch):
    """fit's own parts (the large products cut in slices, Adam's update in ranges), their setting
    flipping with one thread every few steps, give the parameters and losses of a fit at one
    BLAS thread up to the products' rounding (the same draws), and the count in force before
    the fit is restored; the way of each product it cut in parts was measured. The 64 x 256 layer at batch 64 is over the products' grain. Concrete's
    draws are relaxed: under DisARM some runs differed by 4e-4 after 200 steps (the same value in
    every such run), as a slice's rounding can flip a hard draw."""
    import numba
    from ppl.kernels.native import blas, parts
    if numba.get_num_threads() < 2 or blas.cores() < 2 or blas.get_threads() is None:
        pytest.skip("ppl's parts need two threads and NumPy's OpenBLAS")
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)

    def make():   # relaxed draws: a product's rounding cannot flip a hard sample and change the run
        return sbn.build(latent=(256,)).compile(estimators="concrete", dtype=np.float32, seed=3)

    fixed = make()
    h0 = fit(fixed, {"x": X}, ppl.optim.Adam(1e-3), steps=200, batch_size=64, seed=5, progress=False,
             nopython=True, blas_threads=1)
    monkeypatch.setattr(blas, "DEFAULTED", True)
    monkeypatch.setattr(T, "PROBE_SECONDS", 0.0)      # every chunk a probe segment: many flips
    monkeypatch.setattr(T, "HOLD_SECONDS", 0.0)
    monkeypatch.setattr(T, "WARM_SECONDS", 0.0)       # the probes from the first chunk on
    timed = make()
    plan = plan_fit(timed, {"x": X}, ppl.optim.Adam(1e-3), steps=200, batch_size=64, nopython=True)
    assert plan.choose == "parts" and plan.parts >= 2 and plan.blas_threads == 1
    parts.clear_ways()
    h1 = fit(timed, {"x": X}, ppl.optim.Adam(1e-3), steps=200, batch_size=64, seed=5, progress=False, nopython=True)
    assert len(h1.threads) >= 2 and set(h1.threads[0][1]) == {f"{plan.parts} parts at once", "one thread"}
    assert parts.ways() and not parts.recorded()   # the products it cut in parts: each one's way measured
    assert not np.array_equal(fixed.theta, make().theta)   # trained
    np.testing.assert_allclose(timed.theta, fixed.theta, rtol=0, atol=2e-5)
    np.testing.assert_allclose(np.asarray(h1.loss), np.asarray(h0.loss), rtol=1e-5)
    assert parts.get_parts() == 1                          # restored


def test_large_weights_split_at_many_rows_and_keep_their_parts_for_the_whole_batch(monkeypatch):
    """Weight matrices over SPLIT_MAX_WEIGHTS take the products' parts up to SPLIT_MIN_ROWS
    evaluated rows a batch and the halves from there; where the per-step loop runs (its batch
    whole: the chunk loop not compiled for a short run), such a split fit times its parts
    against one thread instead."""
    import numba
    from ppl.kernels.native import blas, parts
    if numba.get_num_threads() < 2 or blas.cores() < 2 or blas.get_threads() is None:
        pytest.skip("ppl's parts need two threads and NumPy's OpenBLAS")
    X = np.ascontiguousarray(sbn.data()["train"]["x"], np.float32)
    monkeypatch.setattr(blas, "DEFAULTED", True)
    big = sbn.build(latent=(1100,)).compile(estimators="disarm", dtype=np.float32, seed=3)   # 64 x 1100 > 256 x 256
    n = min(blas.cores(), numba.get_num_threads())
    rows = T.SPLIT_MIN_ROWS // big.rows_per_data_row
    plan = plan_fit(big, {"x": X}, ppl.optim.Adam(1e-3), steps=10, batch_size=rows)
    assert (plan.choose, plan.split, plan.parts) == ("split", True, n)
    plan = plan_fit(big, {"x": X}, ppl.optim.Adam(1e-3), steps=10, batch_size=rows - 1)
    assert (plan.choose, plan.split, plan.parts) == ("parts", False, n)
    monkeypatch.setattr(T, "PROBE_SECONDS", 0.0)
    monkeypatch.setattr(T, "WARM_SECONDS", 0.0)
    monkeypatch.setattr(fit_module._Chunks, "make", classmethod(lambda cls, *a, **k: None))   # the per-step loop
    h = fit(big, {"x": X}, ppl.optim.Adam(1e-3), steps=12, batch_size=rows, seed=5, progress=False)
    assert h.threads and set(h.threads[0][1]) == {f"{n} parts at once", "one thread"}
    assert parts.get_parts() == 1


def test_a_small_model_compiles_no_part_kernel(tmp_path):
    """The parts' parallel kernels are compiled only for work that reaches their grain: a default
    fit of the bundled 64-32 SBN, in a fresh process, neither binds nor compiles any."""
    import os
    import subprocess
    import sys
    code = ("import numpy as np, ppl\n"
            "from ppl.models import sbn\n"
            "from ppl.kernels.cpu import part_kernels\nfrom ppl.kernels.native import blas\n"
            "blas.DEFAULTED = True\n"
            "prog = sbn.build(latent=(32,)).compile(estimators='disarm', dtype=np.float32)\n"
            "X = np.ascontiguousarray(sbn.data()['train']['x'], np.float32)\n"
            "h = ppl.fit(prog, {'x': X}, ppl.optim.Adam(1e-3), steps=20, batch_size=32, progress=False)\n"
            "print(sorted(part_kernels._BOUND), part_kernels.split_gemm.signatures, h.threads)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[] [] []", out.stdout
