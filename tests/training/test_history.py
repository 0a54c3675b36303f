"""Long runs in bounded memory and disk: the History's loss record keeps the same size however many
steps it records, gives the same record however the steps are cut into calls, and goes into the
checkpoint, so a run stopped and resumed (at a checkpoint, after a full disk, after kill -9) ends
bit for bit where the uninterrupted run ends: parameters, optimiser state, estimator state and
the record."""
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ppl
from ppl.training import history
from ppl.training.fit import fit, load_checkpoint
from ppl.training.history import History
from ppl.models import sbn

from machine import assert_identical


def _record(h):
    return {k: np.asarray(v) for k, v in h.state().items()}


def _nbytes(h):
    return sum(a.nbytes for a in (h._ints, h._flts, h._pts, h._kept))


def test_the_record_stays_the_same_size_however_many_steps():
    h = History(keep_losses=False)
    rng = np.random.default_rng(0)
    h.append(rng.random(1000))
    size, ck = _nbytes(h), sum(a.nbytes for a in h.state().values())
    for _ in range(30):                                  # 3 million steps more
        h.append(rng.random(100_000))
        assert _nbytes(h) == size
    assert h.steps == 3_001_000
    assert sum(a.nbytes for a in h.state().values()) <= ck + 4 * 8 * history.RECORD_POINTS
    c = h.curve()
    assert len(c["step"]) <= history.RECORD_POINTS + 1 and c["step"][-1] == h.steps
    assert np.all(np.diff(c["step"]) > 0) and np.all(c["min"] <= c["mean"]) and np.all(c["mean"] <= c["max"])
    assert abs(h.loss_mean - 0.5) < 1e-3 and 0 <= h.loss_min < 1e-5 and 1 - 1e-5 < h.loss_max <= 1
    assert len(repr(h)) < 300 and "3,001,000 steps" in repr(h)
    with pytest.raises(ppl.ModelError, match=r"History.loss: .*keep_losses=True"):
        h.loss


def test_keep_losses_none_keeps_every_step_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(history, "KEEP_STEPS", 500)
    h = History()
    h.append(np.arange(400.0))
    assert h.keeps_losses and np.array_equal(h.loss, np.arange(400.0))
    h.append(np.arange(200.0))
    assert not h.keeps_losses and h._kept.nbytes == 0
    with pytest.raises(ppl.ModelError, match="keep_losses"):
        History(keep_losses="yes")


def test_the_record_does_not_depend_on_how_the_steps_are_cut():
    """Appended in calls of random lengths, one at a time, or all at once: the same record bit for
    bit (points merging as they fill); the points are the blocks' mean / min / max and the EMA."""
    x = np.random.default_rng(1).normal(size=5000)
    a, b, c = (History(keep_losses=True, points=16) for _ in range(3))
    cuts = np.cumsum(np.random.default_rng(2).integers(1, 700, 40))
    for part in np.split(x, cuts[cuts < x.size]):
        a.append(part)
    for v in x[:300]:
        b.append([v])
    b.append(x[300:])
    c.append(x)
    for k, v in _record(c).items():
        assert np.array_equal(_record(a)[k], v) and np.array_equal(_record(b)[k], v), k
    cur = c.curve()
    w = int(c._ints[1])
    full = x[: (x.size // w) * w].reshape(-1, w)
    n = full.shape[0]
    np.testing.assert_allclose(cur["mean"][:n], full.mean(1), rtol=1e-12)
    assert np.array_equal(cur["min"][:n], full.min(1)) and np.array_equal(cur["max"][:n], full.max(1))
    assert np.array_equal(cur["ema"], c.smoothed()[cur["step"] - 1])      # the EMA at the blocks' ends
    assert c.ema == c.smoothed()[-1]


def _prog():
    return sbn.build(latent=(8,)).compile(dtype=np.float64)


def _data():
    return {"x": (np.random.default_rng(0).random((50, 64)) < 0.3).astype(np.float64)}


def _everything(prog, opt, h):
    st = {k: np.asarray(v, float).ravel() for k, v in opt.state().items() if k != "kind"}
    rec = _record(h)
    return np.concatenate([prog.theta, prog.state] + [st[k] for k in sorted(st)]
                          + [rec[k].astype(float).ravel() for k in sorted(rec)])


@pytest.mark.parametrize("keep", [False, True])
def test_resume_is_bit_identical_in_params_state_and_record(keep, tmp_path, monkeypatch):
    """N steps equal N/2 steps, a checkpoint, and N/2 more resumed from it: parameters, optimiser
    and estimator state, and the History's record (points merged twice on the way), bit for bit."""
    monkeypatch.setattr(history, "RECORD_POINTS", 8)
    data, N = _data(), 240
    kw = dict(batch_size=8, seed=5, progress=False, nopython=True, keep_losses=keep, eval_every=40,
              eval_fn=lambda p: float(p.theta[0]))

    def uninterrupted():
        prog, opt = _prog(), ppl.optim.Adam(0.01)
        h = fit(prog, data, opt, steps=N, **kw)
        return _everything(prog, opt, h)
    want = uninterrupted()
    ck = tmp_path / "ck.npz"
    fit(_prog(), data, ppl.optim.Adam(0.01), steps=N // 2, checkpoint=ck, **kw)
    prog, opt = _prog(), ppl.optim.Adam(0.01)
    h = fit(prog, data, opt, steps=N, checkpoint=ck, resume=True, **kw)
    assert h.start_step == N // 2 and h.steps == N and h.keeps_losses == keep and int(h._ints[1]) > 8
    assert h.eval_steps == [40, 80, 120, 160, 200, 240] and np.all(np.isfinite(h.eval_train))
    assert_identical(_everything(prog, opt, h), want, uninterrupted, "resumed run vs uninterrupted")
    with np.load(ck) as f:   # the checkpoint holds the same record
        assert np.array_equal(f["record.pts"], h.state()["record.pts"]) and f["loss"].size == (N if keep else 0)
    with pytest.raises(ppl.ModelError, match=r"asks ema=0.9; resume with ema=0.98"):
        fit(_prog(), data, ppl.optim.Adam(0.01), steps=N + 8, checkpoint=ck, resume=True, **{**kw, "ema": 0.9})
    if not keep:
        p = _prog()
        with pytest.raises(ppl.ModelError, match="does not hold every step's loss"):
            fit(p, data, ppl.optim.Adam(0.01), steps=N + 8, checkpoint=ck, resume=True,
                **{**kw, "keep_losses": True})
        assert np.array_equal(p.theta, _prog().theta)   # refused before anything was assigned


def test_the_checkpoint_does_not_grow_with_the_steps(tmp_path):
    data, sizes = _data(), []
    for steps in (3_000, 30_000):
        ck = tmp_path / f"ck{steps}.npz"
        h = fit(_prog(), data, ppl.optim.Adam(0.001), steps=steps, batch_size=1, progress=False, checkpoint=ck,
                keep_losses=False)
        sizes.append(ck.stat().st_size)
        assert h.steps == steps
    assert sizes[1] <= sizes[0] + 4 * 8 * history.RECORD_POINTS


def test_a_checkpoint_with_every_loss_from_before_the_record_resumes(tmp_path):
    """A checkpoint written before the record (its per-step 'loss' only): the record is rebuilt
    from those losses, as if they had been recorded."""
    data, ck = _data(), tmp_path / "old.npz"
    h0 = fit(_prog(), data, ppl.optim.Adam(0.01), steps=20, batch_size=8, seed=2, progress=False, checkpoint=ck)
    with np.load(ck) as f:
        old = {k: f[k] for k in f.files if not k.startswith("record.") and k != "eval_train"}
    np.savez(ck, **old)
    h = fit(_prog(), data, ppl.optim.Adam(0.01), steps=30, batch_size=8, seed=2, progress=False, checkpoint=ck,
            resume=True)
    assert h.steps == 30 and np.array_equal(h.loss[:20], h0.loss)


def test_a_full_disk_keeps_the_previous_checkpoint_and_resume_continues(tmp_path, monkeypatch):
    """The third checkpoint write finds the disk full: a clear error, the second checkpoint kept
    (no temporary file left), and resuming from it ends where the uninterrupted run ends."""
    data, ck = _data(), tmp_path / "ck.npz"
    kw = dict(batch_size=8, seed=3, progress=False, nopython=True, checkpoint_every=10)

    def uninterrupted():
        prog, opt = _prog(), ppl.optim.Adam(0.01)
        h = fit(prog, data, opt, steps=40, **kw)
        return _everything(prog, opt, h)
    want = uninterrupted()
    real, calls = np.savez, []

    def savez(fh, **fields):
        calls.append(1)
        if len(calls) == 3:
            fh.write(b"PK\x03\x04 half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fh, **fields)
    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(ppl.ModelError, match=r"writing failed \(OSError: \[Errno 28\] No space left on device\); "
                                             r"the previous file, if any, was kept"):
        fit(_prog(), data, ppl.optim.Adam(0.01), steps=40, checkpoint=ck, **kw)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ck.npz"]
    prog, opt = _prog(), ppl.optim.Adam(0.01)
    assert int(load_checkpoint(ck, prog, opt)["step"]) == 20
    prog, opt = _prog(), ppl.optim.Adam(0.01)
    h = fit(prog, data, opt, steps=40, checkpoint=ck, resume=True, **kw)
    assert h.start_step == 20
    assert_identical(_everything(prog, opt, h), want, uninterrupted, "resumed after a full disk vs uninterrupted")


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import ppl
    from ppl.training.fit import fit
    from ppl.models import sbn
    prog = sbn.build(latent=(8,)).compile(dtype=np.float64)
    data = {"x": (np.random.default_rng(0).random((50, 64)) < 0.3).astype(np.float64)}
    fit(prog, data, ppl.optim.Adam(0.001), steps=10**9, batch_size=1, seed=7, progress=False, nopython=True,
        checkpoint=sys.argv[1], checkpoint_every=2_000, keep_losses=False, blas_threads=1)
""")


def test_kill_9_mid_run_leaves_a_checkpoint_resume_continues(tmp_path):
    """A run killed with SIGKILL (no cleanup) mid-run, after a few checkpoints: the checkpoint
    loads, and resuming from it 1,000 steps further ends where the uninterrupted run does."""
    ck = tmp_path / "ck.npz"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ck)], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and child.poll() is None:
            if ck.exists() and int(np.load(ck)["step"]) >= 6_000:
                break
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    data = {"x": (np.random.default_rng(0).random((50, 64)) < 0.3).astype(np.float64)}
    kw = dict(batch_size=1, seed=7, progress=False, nopython=True, keep_losses=False, blas_threads=1)
    start = int(np.load(ck)["step"])
    assert start >= 6_000 and start % 2_000 == 0
    prog, opt = _prog(), ppl.optim.Adam(0.001)
    h = fit(prog, data, opt, steps=start + 1_000, checkpoint=ck, resume=True, **kw)
    assert h.start_step == start and h.steps == start + 1_000

    def uninterrupted():
        p, o = _prog(), ppl.optim.Adam(0.001)
        hh = fit(p, data, o, steps=start + 1_000, **kw)
        return _everything(p, o, hh)
    assert_identical(_everything(prog, opt, h), uninterrupted(), uninterrupted, "resumed after kill -9")
