"""ppl.distributed on a LocalCluster of 2 worker processes (loopback): a sweep equals the serial
run row for row, a failing run becomes an error row while the rest complete, a worker killed
mid-sweep has its runs redone elsewhere (every row present once, equal to the serial ones), and
sharded gradient moments equal the serial answer bit for bit and a direct NumPy computation."""
import os
import signal
import threading
import time

import numpy as np
import pytest
from machine import assert_identical

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.distributed

from ppl.training.distributed import Moments, moments, open_client, sweep  # noqa: E402
from ppl.dsl import ModelError  # noqa: E402
from ppl.models import sbn, toy_bernoulli  # noqa: E402

FIELDS = ("settings", "estimator", "seed", "exact_objective", "p", "grad_variance", "curve", "error")


@pytest.fixture(scope="module")
def client():
    c, close = open_client(workers=2)
    try:
        yield c
    finally:
        close()


def _same(rows, want, again):
    """rows equal want field for field (floats bit for bit: machine.assert_identical, which
    recomputes want with again() to tell this machine's libm misses from a real difference)."""
    assert len(rows) == len(want)

    def flat(rs):
        return np.array([float(x) for r in rs for k in FIELDS if k not in ("settings", "estimator", "error")
                         for x in np.ravel(r.get(k) if r.get(k) is not None else np.nan)])
    for r, w in zip(rows, want):
        for k in ("settings", "estimator", "seed", "error"):
            assert r.get(k) == w.get(k), (k, r.get(k), w.get(k))
    assert_identical(flat(rows), flat(want), lambda: flat(again()), "the rows of the two runs")


def test_sweep_on_two_workers_equals_the_serial_run_and_reports_a_failing_run(client):
    kw = dict(settings={"steps": 300}, grad_draws=20, progress=False)
    def serial_run():
        return sweep("toy_bernoulli", ["score", "straight_through"], 2, **kw)
    serial = serial_run()
    assert all(r["error"] is None for r in serial)
    assert serial[0]["exact_objective"] != serial[1]["exact_objective"]   # the seed matters
    _same(sweep("toy_bernoulli", ["score", "straight_through"], 2, client=client, **kw), serial, serial_run)
    # a run that raises: its row says why, with its settings; the others complete as before
    mixed = sweep("toy_bernoulli", ["score", "no_such_estimator"], 2, client=client, **kw)
    bad = [r for r in mixed if r["error"]]
    assert [r["seed"] for r in bad] == [0, 1]
    assert all("no_such_estimator" in r["error"] and r["settings"] == "steps=300" for r in bad)
    _same([r for r in mixed if not r["error"]], serial[:2], lambda: serial_run()[:2])
    table = mixed.table()
    assert "no_such_estimator" in table and "exact_objective" in table


def test_a_worker_killed_mid_sweep_has_its_runs_redone_elsewhere(client):
    kw = dict(settings={"steps": 100000}, progress=False)
    def serial_run():
        return sweep("toy_bernoulli", ["score", "straight_through"], 2, **kw)
    serial = serial_run()
    pids = client.run(os.getpid)
    seen = {}

    def kill():   # as soon as a worker holds a run, kill it (SIGKILL, no goodbye)
        for _ in range(600):
            busy = [a for a, keys in client.processing().items() if keys and a in pids]
            if busy:
                seen["pid"] = pids[busy[0]]
                os.kill(seen["pid"], signal.SIGKILL)
                return
            time.sleep(0.02)

    t = threading.Thread(target=kill)
    t.start()
    rows = sweep("toy_bernoulli", ["score", "straight_through"], 2, client=client, **kw)
    t.join()
    assert "pid" in seen                              # it died with work in hand
    _same(rows, serial, serial_run)
    client.wait_for_workers(2, timeout=60)            # the nanny restarts it
    assert seen["pid"] not in client.run(os.getpid).values()


def _sbn_program():
    prog = sbn.build().compile(estimators="disarm", samples=2, dtype=np.float64, seed=3)
    x = sbn.data(seed=0)["train"]["x"][:8].astype(np.float64)
    return prog, {"x": x}


def test_sharded_gradient_moments_equal_the_serial_answer_and_numpy(client):
    prog, data = _sbn_program()
    state = prog.state.copy()
    m = moments(prog, data, 150, client=client, draws_per_task=23, progress=False)
    s = moments(prog, data, 150, draws_per_task=23, progress=False)
    assert isinstance(m, Moments) and m.n == s.n == 150
    again = lambda: moments(prog, data, 150, draws_per_task=23, progress=False)  # noqa: E731
    assert_identical(np.r_[m.mean, m.m2], np.r_[s.mean, s.m2], lambda: (lambda t: np.r_[t.mean, t.m2])(again()),
                     "moments on the cluster and here")
    assert np.array_equal(prog.state, state)
    # every draw is addressed by its global index: other shard sizes, the same draws
    one = moments(prog, data, 150, draws_per_task=150, progress=False)
    np.testing.assert_allclose(one.mean, s.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(one.var, s.var, rtol=1e-10, atol=1e-14)
    # against the draws themselves, computed directly
    names = prog.model_param_names()
    G = []
    for d in range(150):
        prog.state[:] = state
        _, g = prog.grad(data, seed=0, step=d)
        G.append(np.concatenate([g[k].ravel() for k in names]))
    G = np.array(G)
    np.testing.assert_allclose(s.mean, G.mean(0), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(s.var, G.var(0, ddof=1), rtol=1e-9, atol=1e-13)
    assert set(s.by_param("var")) == set(names)


def test_moments_of_a_model_or_builder_equal_those_of_its_program():
    prog, data = _sbn_program()
    want = moments(prog, data, 20, progress=False)
    opts = dict(estimators="disarm", samples=2, dtype=np.float64, seed=3)
    for what in (sbn.build(), sbn.build):
        got = moments(what, data, 20, progress=False, compile_options=opts)
        np.testing.assert_array_equal(np.r_[got.mean, got.m2], np.r_[want.mean, want.m2])
    with pytest.raises(ModelError, match="are for a Model or a builder"):
        moments(prog, data, 20, compile_options={"samples": 2})
    with pytest.raises(ModelError, match="give a compiled program, a ppl.Model"):
        moments("sbn", data, 20)


def test_bad_arguments_name_the_fix():
    prog, data = _sbn_program()
    with pytest.raises(ModelError, match="draws must be >= 2"):
        moments(prog, data, 1)
    with pytest.raises(ModelError, match="workers must be >= 1"):
        open_client(workers=0)
    with pytest.raises(ModelError, match="give data="):
        sweep(sbn.build, ["score"], 1)
    with pytest.raises(ModelError, match="seeds is empty"):
        sweep("sbn", ["score"], [])


def _two_layer(dtype=np.float64):
    """Two stochastic layers, DisARM (antithetic rows) over score with a moving-average
    baseline (estimator state), K = 2 draws per data row."""
    return sbn.build(latent=(16, 8)).compile(
        estimators={"h1": "disarm", "h2": ("score", {"baseline": "moving_average"})}, samples=2, dtype=dtype, seed=5)


@pytest.mark.parametrize("lowering", ["arrays", "row-fused"])
def test_step_rows_addresses_noise_by_global_row(lowering):
    """A batch's two halves through step_rows (row0 = first drawn row of the half) give the
    whole batch's per-row costs; with row0 = 0 the second half would draw the first half's noise."""
    if lowering == "row-fused":
        m = toy_bernoulli.build()
        prog = m.compile(estimators=("score", {"baseline": "none"}), samples=3, lowering="row-fused", dtype=np.float64)
        data, B = None, 10
    else:
        prog = _two_layer()
        data, B = {"x": sbn.data(seed=0)["train"]["x"][:10].astype(np.float64)}, 10
    whole = prog.loss(data, seed=4, step=9, batch=None if data else B)

    def half(a, b, row0):
        part = None if data is None else {"x": data["x"][a:b]}
        args = prog.args(part, batch=None if data else b - a)
        return float(prog.module.step_rows(*args, np.uint64(4), np.int64(9), 0, np.int64(row0)))
    K = prog.samples
    both = (5 * half(0, 5, 0) + 5 * half(5, 10, 5 * K)) / 10
    assert both == pytest.approx(whole, rel=1e-12)
    assert (5 * half(0, 5, 0) + 5 * half(5, 10, 0)) / 10 != pytest.approx(whole, rel=1e-6)


def test_data_parallel_training_equals_fit(client):
    from ppl.training.distributed import fit_data_parallel
    from ppl.training.fit import fit
    from ppl.training.optim import Adam
    X = sbn.data(seed=0)["train"]["x"][:200].astype(np.float64)
    want = _two_layer()
    fit(want, {"x": X}, Adam(lr=0.01), steps=12, batch_size=50, seed=7, blas_threads=1, nopython=False,
        progress=False)
    for c in (client, None):   # 2 workers; and the same shards computed here
        got = _two_layer()
        hist = fit_data_parallel(got, {"x": X}, Adam(lr=0.01), steps=12, batch_size=50, seed=7, client=c,
                                 shards=2, progress=False)
        assert len(hist.loss) == 12
        np.testing.assert_allclose(got.theta, want.theta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.state, want.state, rtol=1e-12)
    assert not np.allclose(want.theta, _two_layer().theta)   # it trained


def test_periodic_averaging(client):
    """average_every=1 with SGD is the synchronous update; every 3 steps with Adam it trains, the
    same on the cluster as here."""
    from ppl.training.distributed import fit_data_parallel
    from ppl.training.optim import SGD, Adam
    X = sbn.data(seed=0)["train"]["x"][:200].astype(np.float64)
    kw = dict(steps=6, batch_size=40, seed=2, shards=2, progress=False)
    sync, local = _two_layer(), _two_layer()
    fit_data_parallel(sync, {"x": X}, SGD(lr=0.05), **kw)
    fit_data_parallel(local, {"x": X}, SGD(lr=0.05), average_every=1, client=client, **kw)
    np.testing.assert_allclose(local.theta, sync.theta, rtol=1e-10, atol=1e-13)
    runs = []
    for c in (client, None):
        p = _two_layer()
        h = fit_data_parallel(p, {"x": X}, Adam(lr=0.01), average_every=3, client=c, **{**kw, "steps": 30})
        runs.append((p.theta.copy(), h.loss))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-10, atol=1e-13)
    assert np.mean(runs[0][1][-6:]) < np.mean(runs[0][1][:6])


def test_command_line_on_two_workers(capsys):
    from ppl.cli import main
    assert main(["compare", "toy_bernoulli", "--estimators", "score,straight_through", "--seeds", "2", "--steps", "50",
                 "--grad-draws", "5", "--workers", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| score |" in out and "| straight_through |" in out
    assert main(["train", "sbn", "--workers", "2", "--steps", "20", "--batch", "64", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test_elbo" in out
    with pytest.raises(SystemExit) as e:
        main(["train", "sbn", "--average-every", "3"])
    assert e.value.code == 2
    assert "--average-every is for data-parallel training" in capsys.readouterr().err
