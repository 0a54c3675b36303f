"""fit's chunks on the CUDA target (training/device_chunks.py): a training step launched on fixed
arrays, what changes per step read from the device clock (kernels/cuda/clock.py), replayed as a
CUDA graph (runtime/cuda_graph.py; one by one in the simulator). The chunks give the per-step
loop's losses and parameters bit for bit, and a step that fails inside a chunk fails as it does
there, from the same parameters."""
import numpy as np
import pytest
from numba import config, cuda

import ppl
from ppl.kernels.cuda import clock as K
from ppl.kernels.cuda import core as gpu
from ppl.kernels.cuda import noise
from ppl.kernels.native.launch import on_stream
from ppl.runtime.cuda_graph import Replay
from ppl.training import device_chunks

import small_models   # tests/: the graphs the tests share

pytestmark = pytest.mark.cuda


def sbn():
    with ppl.Model("sbn_chunks") as m:
        x = m.input("x", 6)
        h = ppl.Bernoulli("h", logits=ppl.Affine(x, 3, name="enc"))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("prior", ppl.bernoulli_nll(ppl.param("prior", 3), target=h))
        m.cost("recon", ppl.bernoulli_nll(ppl.Affine(h, 6, name="dec"), target=x))
    return m


def vae():
    with ppl.Model("vae_chunks") as m:
        x = m.input("x", 6)
        e = ppl.tanh(ppl.Affine(x, 4, name="e1"))
        loc, scale = ppl.Affine(e, 2, name="loc"), ppl.softplus(ppl.Affine(e, 2, name="sc"))
        z = ppl.Normal("z", loc=loc, scale=scale)
        m.cost("recon", ppl.bernoulli_nll(ppl.Affine(ppl.tanh(ppl.Affine(z, 4, name="d1")), 6, name="d2"), target=x))
        m.cost("kl", ppl.gaussian_kl(loc, scale))
    return m

DATA = {"x": (np.random.default_rng(4).random((10, 6)) > 0.5).astype(np.float64)}


def _fit(model, opt, nopython, steps=9, **kw):
    prog = model().compile(dtype=np.float64, seed=2, target="cuda")
    hist = ppl.fit(prog, DATA, opt(), steps=steps, batch_size=4, progress=False, nopython=nopython, **kw)
    return prog, hist


@pytest.mark.parametrize("model, opt", [
    (sbn, lambda: ppl.optim.Adam(lr=ppl.optim.cosine_decay(0.05, 9))),
    (vae, lambda: ppl.optim.Momentum(lr=0.05)),
], ids=["sbn-adam-schedule", "vae-momentum"])
def test_chunks_give_the_per_step_loop_bit_for_bit(model, opt, monkeypatch):
    """Chunks of at most 3 steps (the clock carried across chunks and epochs of 10 rows in
    batches of 4) against one step at a time from Python."""
    runs = []
    monkeypatch.setattr(device_chunks.DeviceChunks, "MAX", 3)
    real = device_chunks.DeviceChunks.run
    monkeypatch.setattr(device_chunks.DeviceChunks, "run", lambda self, t, n: runs.append(n) or real(self, t, n))
    (a, ha), (b, hb) = _fit(model, opt, None), _fit(model, opt, False)
    assert runs == [3, 3, 2], runs
    np.testing.assert_array_equal(ha.loss, hb.loss)
    a.pull(), b.pull()
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.state, b.state)


def walk():
    """A scan: each of 3 steps draws a Bernoulli flag (DisARM) from the carried position."""
    return small_models.walk("walk_chunks", 6, 3)


def test_a_scan_trains_in_chunks_as_one_step_at_a_time(monkeypatch):
    """Many simulations as rows on the device: a scan model's loop block (its kernels launched
    step by step of the loop inside the captured training step) in chunks of at most 2 steps,
    against one step at a time, and against the CPU program's per-step loop (float64, the same
    draws: the same losses to rounding)."""
    monkeypatch.setattr(device_chunks.DeviceChunks, "MAX", 2)
    out = []
    for target, nopython in (("cuda", None), ("cuda", False), ("cpu", False)):
        prog = walk().compile(dtype=np.float64, seed=2, target=target, estimators="disarm")
        hist = ppl.fit(prog, DATA, ppl.optim.Adam(lr=0.05), steps=4, batch_size=4, progress=False, nopython=nopython)
        if target == "cuda":
            prog.pull()
        out.append((np.asarray(hist.loss), prog.theta.copy()))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_allclose(out[0][0], out[2][0], rtol=1e-12)
    np.testing.assert_allclose(out[0][1], out[2][1], rtol=1e-12, atol=1e-14)


def test_a_step_failing_inside_a_chunk_fails_as_one_step_at_a_time(monkeypatch):
    """SGD at a rate that makes the loss infinite at step 6, inside the chunk of steps 4-6: the
    chunk goes back to its start and runs its steps one by one, so the error and the parameters
    are the per-step loop's."""
    monkeypatch.setattr(device_chunks.DeviceChunks, "MAX", 3)
    out = []
    for nopython in (None, False):
        prog = vae().compile(dtype=np.float32, seed=2, target="cuda")   # float32: inf, not the simulator's domain error
        with pytest.raises(ppl.ModelError, match="non-finite at step") as e:
            ppl.fit(prog, DATA, ppl.optim.SGD(lr=1e3), steps=9, batch_size=4, progress=False, nopython=nopython)
        prog.pull()
        out.append((str(e.value), prog.theta.copy(), prog.steps_trained))
    assert out[0][0] == out[1][0] and "step 6" in out[0][0], out[0][0]
    np.testing.assert_array_equal(out[0][1], out[1][1])
    assert out[0][2] == out[1][2] == 6


def test_clip_norm_and_user_optimisers_keep_the_per_step_loop():
    prog = sbn().compile(dtype=np.float64, seed=2, target="cuda")
    with pytest.raises(ppl.ModelError, match="nopython=True on the CUDA target needs"):
        ppl.fit(prog, DATA, ppl.optim.Adam(lr=0.05, clip_norm=1.0), steps=3, batch_size=4, progress=False,
                nopython=True)


def test_replay_captures_on_a_device_and_calls_the_function_in_the_simulator():
    """On a GPU the function runs once more, under capture (launching nothing), and the graph
    replays its launches; in the simulator it runs each time. Either way they happen n times."""
    calls, out = [], cuda.to_device(np.zeros(4))
    one = cuda.to_device(np.ones(4))

    def fn():
        calls.append(1)
        gpu.sgd_update(out, one, -1.0)   # out += 1

    fn()   # its kernels compiled before the capture, as DeviceChunks does
    r = Replay(fn)
    sim = bool(config.ENABLE_CUDASIM)
    assert r.captured != sim and (r.why is None) != sim, r.why
    r.run(3)
    assert len(calls) == (4 if sim else 2)
    np.testing.assert_array_equal(out.copy_to_host(), 4.0)


def test_products_are_replayed_with_the_graph():
    """A product (cuBLAS on a GPU that has it, the tiled kernel otherwise) is part of the graph:
    c += a b, once eagerly and three times replayed, is 4 a b."""
    from ppl.kernels.cuda import products
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((70, 9)), rng.standard_normal((9, 66))
    da, db, dc = cuda.to_device(a), cuda.to_device(b), cuda.to_device(np.zeros((70, 66)))

    def fn():
        products.matmul(da, False, db, False, dc)

    fn()
    r = Replay(fn)
    r.run(3)
    np.testing.assert_allclose(dc.copy_to_host(), 4 * a @ b, rtol=1e-12, atol=1e-12)


def test_launches_go_to_the_stream_named():
    s = cuda.stream()
    out = cuda.to_device(np.zeros((4, 5)))
    with on_stream(s):
        noise.fill_uniform(out, 7, 1, 3)
    s.synchronize()
    ref = cuda.to_device(np.zeros((4, 5)))
    noise.fill_uniform(ref, 7, 1, 3)
    np.testing.assert_array_equal(out.copy_to_host(), ref.copy_to_host())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noise_on_a_clock_is_the_noise_of_its_step(dtype):
    clock = cuda.to_device(np.array([(1 << 32) + 5, 0, 0], np.int64))   # masked as a step number is
    index = cuda.to_device(np.array([[2], [0]], np.int64))
    for fill in (noise.fill_uniform, noise.fill_normal, noise.fill_gumbel):
        a, b = cuda.to_device(np.zeros((3, 6), dtype)), cuda.to_device(np.zeros((3, 6), dtype))
        fill(a, 11, 2, clock, 1)
        fill(b, 11, 2, 5, 1)
        np.testing.assert_array_equal(a.copy_to_host(), b.copy_to_host(), err_msg=fill.__name__)
    for fill in (noise.fill_uniform_at, noise.fill_normal_at):
        a, b = cuda.to_device(np.zeros((4, 5), dtype)), cuda.to_device(np.zeros((4, 5), dtype))
        fill(a, 11, 2, clock, index, 2)
        fill(b, 11, 2, 5, index, 2)
        np.testing.assert_array_equal(a.copy_to_host(), b.copy_to_host(), err_msg=fill.__name__)


def _ends(kind, d, rates, clock, end):
    if kind == "adam":
        K.adam_end(*d, rates, 0.9, 0.999, 1e-8, clock, *end)
    elif kind == "momentum":
        K.momentum_end(d[0], d[1], d[2], rates, 0.9, clock, *end)
    else:
        K.sgd_end(d[0], d[1], rates, clock, *end)


@pytest.mark.filterwarnings("ignore:invalid value")   # the simulator's arithmetic on the NaN entry
@pytest.mark.parametrize("kind, n", [("adam", 7), ("momentum", 7), ("sgd", 7), ("adam", 300)])   # 300: 3 blocks
def test_a_steps_last_kernel_updates_counts_and_moves_the_clock(kind, n):
    """The step's last kernel (cuda/clock.py) takes the optimiser's update with the rate of the
    clock's slot and Adam's step count from its updates (the declared update kernels' bits); counts
    the gradient's non-finite entries into the sink's last word; then moves the sink into the
    record's row SLOT, zeroes it and moves the clock on, once, and again on the next call."""
    rng = np.random.default_rng(1)
    theta, grad, m, v = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n), rng.random(n)
    grad[[1, 5]] = [np.nan, -np.inf]
    rates = cuda.to_device(np.array([9.0, 0.01, 0.02, 9.0]))
    clock = cuda.to_device(np.array([40, 1, 4], np.int64))   # slot 1's rate, Adam's fifth update
    sink = cuda.to_device(np.array([1.5, 0.0, 2.0, 0.0]))
    record, done = cuda.to_device(np.zeros((4, 4))), cuda.to_device(np.zeros(1, np.int32))
    d = [cuda.to_device(x) for x in (theta, grad, m, v)]
    e = [cuda.to_device(x) for x in (theta, grad, m, v)]
    _ends(kind, d, rates, clock, (sink, record, done))
    update = {"adam": lambda r, t: gpu.adam_update(*e, r, 0.9, 0.999, 1e-8, t),
              "momentum": lambda r, t: gpu.momentum_update(e[0], e[1], e[2], r, 0.9),
              "sgd": lambda r, t: gpu.sgd_update(e[0], e[1], r)}[kind]
    update(0.01, 5)
    for x, y in zip(d, e):
        np.testing.assert_array_equal(x.copy_to_host(), y.copy_to_host())
    np.testing.assert_array_equal(record.copy_to_host()[1], [1.5, 0.0, 2.0, 2.0])
    np.testing.assert_array_equal(sink.copy_to_host(), 0.0)
    np.testing.assert_array_equal(clock.copy_to_host(), [41, 2, 5])
    np.testing.assert_array_equal(done.copy_to_host(), [0])
    _ends(kind, d, rates, clock, (sink, record, done))   # the next step: slot 2's rate, update 6
    update(0.02, 6)
    for x, y in zip(d, e):
        np.testing.assert_array_equal(x.copy_to_host(), y.copy_to_host())
    np.testing.assert_array_equal(record.copy_to_host()[2], [0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(clock.copy_to_host(), [42, 3, 6])


def test_gather_at_the_clock():
    clock = cuda.to_device(np.array([7, 1, 2], np.int64))
    src = cuda.to_device(np.arange(12.0).reshape(6, 2))
    index = cuda.to_device(np.array([[0, 1], [5, 3], [2, 2]], np.int64))
    dst = cuda.to_device(np.zeros((2, 2)))
    K.gather_rows_at(src, index, clock, dst)
    np.testing.assert_array_equal(dst.copy_to_host(), [[10, 11], [6, 7]])
