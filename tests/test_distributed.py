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

pytest.importorskip("dask.distributed")

from ppl.distributed import Moments, moments, open_client, sweep  # noqa: E402
from ppl.dsl import ModelError  # noqa: E402
from ppl.models import sbn  # noqa: E402

FIELDS = ("settings", "estimator", "seed", "exact_objective", "p", "grad_variance", "curve", "error")


@pytest.fixture(scope="module")
def client():
    c, close = open_client(workers=2)
    try:
        yield c
    finally:
        close()


def _same(rows, want):
    assert len(rows) == len(want)
    for r, w in zip(rows, want):
        for k in FIELDS:
            assert r.get(k) == w.get(k), (k, r.get(k), w.get(k))


def test_sweep_on_two_workers_equals_the_serial_run_and_reports_a_failing_run(client):
    kw = dict(settings={"steps": 300}, grad_draws=20, progress=False)
    serial = sweep("toy_bernoulli", ["score", "straight_through"], 2, **kw)
    assert all(r["error"] is None for r in serial)
    assert serial[0]["exact_objective"] != serial[1]["exact_objective"]   # the seed matters
    _same(sweep("toy_bernoulli", ["score", "straight_through"], 2, client=client, **kw), serial)
    # a run that raises: its row says why, with its settings; the others complete as before
    mixed = sweep("toy_bernoulli", ["score", "no_such_estimator"], 2, client=client, **kw)
    bad = [r for r in mixed if r["error"]]
    assert [r["seed"] for r in bad] == [0, 1]
    assert all("no_such_estimator" in r["error"] and r["settings"] == "steps=300" for r in bad)
    _same([r for r in mixed if not r["error"]], serial[:2])
    table = mixed.table()
    assert "no_such_estimator" in table and "exact_objective" in table


def test_a_worker_killed_mid_sweep_has_its_runs_redone_elsewhere(client):
    kw = dict(settings={"steps": 100000}, progress=False)
    serial = sweep("toy_bernoulli", ["score", "straight_through"], 2, **kw)
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
    _same(rows, serial)
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
    assert np.array_equal(m.mean, s.mean) and np.array_equal(m.m2, s.m2)
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
