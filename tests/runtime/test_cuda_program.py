"""Whole programs on the CUDA target (run in numba's CUDA simulator when there is no GPU):
the same seed gives the same loss and gradients as the CPU program (float64, rtol 1e-9),
training keeps parameters on the device, and without a device the error is clear."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

import ppl
from ppl import Affine, Bernoulli, Model, Normal

pytestmark = pytest.mark.cuda

X = (np.random.default_rng(0).random((3, 6)) > 0.5).astype(np.float64)


def sbn():
    with Model("sbn_cuda") as m:
        x = m.input("x", 6)
        h = Bernoulli("h", logits=Affine(x, 3, name="enc"))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("prior", ppl.bernoulli_nll(ppl.param("prior", 3), target=h))
        m.cost("recon", ppl.bernoulli_nll(Affine(h, 6, name="dec"), target=x))
    return m


def vae():
    with Model("vae_cuda") as m:
        x = m.input("x", 6)
        e = ppl.tanh(Affine(x, 4, name="e1"))
        loc, scale = Affine(e, 2, name="loc"), ppl.softplus(Affine(e, 2, name="sc"))
        z = Normal("z", loc=loc, scale=scale)
        m.cost("recon", ppl.bernoulli_nll(Affine(ppl.tanh(Affine(z, 4, name="d1")), 6, name="d2"), target=x))
        m.cost("kl", ppl.gaussian_kl(loc, scale))
    return m


def _parity(build, **kw):
    cpu = build().compile(dtype=np.float64, seed=1, **kw)
    gpu = build().compile(dtype=np.float64, seed=1, target="cuda", **kw)
    assert gpu.target == "cuda"
    np.testing.assert_array_equal(cpu.theta, gpu.theta)
    for seed in (0, 5):
        lc, gc = cpu.grad({"x": X}, seed=seed)
        lg, gg = gpu.grad({"x": X}, seed=seed)
        assert lg == pytest.approx(lc, rel=1e-9)
        for k in gc:
            np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12, err_msg=k)
    sc, sg = cpu.sample({"x": X}, seed=3), gpu.sample({"x": X}, seed=3)
    np.testing.assert_array_equal(sg["h" if "h" in sc else "z"] > 0.5, sc["h" if "h" in sc else "z"] > 0.5)
    return cpu, gpu


@pytest.mark.parametrize("est", ["score", "disarm", "straight_through"])
def test_sbn_parity(est):
    _parity(sbn, estimators=est)


def test_gaussian_vae_parity():
    _parity(vae)


def test_parity_on_ppls_own_products(monkeypatch):
    """PPL_CUDA_PRODUCTS=tiled: the products on ppl's own kernels (here the per-entry one, for
    small outputs; the tiled one is tested against NumPy in tests/kernels) give the CPU's step
    too (the simulator otherwise takes cuBLAS's calls, emulated)."""
    from ppl.kernels.cuda import cublas, products
    calls, per_entry = [], products.per_entry
    monkeypatch.setattr(products, "per_entry", lambda *a: (calls.append(1), per_entry(*a))[1])
    monkeypatch.setenv("PPL_CUDA_PRODUCTS", "tiled")
    monkeypatch.setattr(cublas, "_STATE", {})
    _parity(sbn, estimators="straight_through")
    assert cublas.why() == "PPL_CUDA_PRODUCTS=tiled" and calls


@pytest.mark.parametrize("est", ["vimco", "score"])
def test_iwae_parity(est):
    """The importance-weighted bound (K = 3): its loss, its normalised weights' cotangents and
    VIMCO's / the score function's signals on the device as on the CPU."""
    _parity(sbn, estimators=est, samples=3, objective="iwae")


def vae_sampled_kl():
    with Model("vae_iw_cuda") as m:
        x = m.input("x", 6)
        e = ppl.tanh(Affine(x, 4, name="e1"))
        z = Normal("z", loc=Affine(e, 2, name="loc"), scale=ppl.softplus(Affine(e, 2, name="sc")))
        m.cost("recon", ppl.bernoulli_nll(Affine(ppl.tanh(Affine(z, 4, name="d1")), 6, name="d2"), target=x))
        m.cost("log_q", ppl.log_prob(z))
        m.cost("prior", ppl.gaussian_nll(0.0, 1.0, z))
    return m


@pytest.mark.parametrize("est", ["dreg", "pathwise"])
def test_iwae_reparameterised_parity(est):
    _parity(vae_sampled_kl, samples=2, objective="iwae", estimators=est)


def test_training_on_the_device_matches_the_cpu():
    cpu, gpu = sbn().compile(dtype=np.float64, seed=2), sbn().compile(dtype=np.float64, seed=2, target="cuda")
    for prog in (cpu, gpu):
        ppl.fit(prog, {"x": X}, ppl.optim.Adam(lr=0.05), steps=5, batch_size=3, progress=False)
    before = dict(gpu.transfers)
    np.testing.assert_allclose(gpu.params["enc.W"], cpu.params["enc.W"], rtol=1e-8)
    assert gpu.transfers["device_to_host"] == before["device_to_host"] + 2  # one pull: theta and state
    assert "target: cuda; host<->device transfers" in gpu.explain()


@pytest.mark.parametrize("resident", [True, False])
def test_fit_gathers_batches_on_the_device(resident, monkeypatch):
    """fit copies the data to the device once and gathers each batch there (the first step's row
    indices, then each chunk's indices, rates and clock: training/device_chunks.py); data too large
    for the device's free memory goes batch by batch, a step at a time. Both train exactly as the
    CPU program does, across epochs."""
    data = {"x": (np.random.default_rng(4).random((10, 6)) > 0.5).astype(np.float64)}
    cpu, gpu = sbn().compile(dtype=np.float64, seed=2), sbn().compile(dtype=np.float64, seed=2, target="cuda")
    if not resident:
        monkeypatch.setattr(type(gpu), "_free_bytes", lambda self: 0)
    before = dict(gpu.transfers)
    hists = [ppl.fit(p, data, ppl.optim.Adam(lr=0.05), steps=7, batch_size=4, progress=False) for p in (cpu, gpu)]
    sent = gpu.transfers["host_to_device"] - before["host_to_device"]
    assert sent == (1 + 1 + 3 if resident else 7), sent   # the data, step 0's rows, one chunk; or each batch
    assert (gpu._resident[1] is not None) == resident
    np.testing.assert_allclose(hists[1].loss, hists[0].loss, rtol=1e-9)
    for k in ("enc.W", "dec.W", "prior"):
        np.testing.assert_allclose(gpu.params[k], cpu.params[k], rtol=1e-8, err_msg=k)


def estimator_net():
    """RELAX and REBAR Bernoulli nodes (REBAR's below RELAX's, so REBAR relaxes nothing but is
    fed by a discrete parent) and a Normal node with the Price estimator."""
    with Model("est_cuda") as m:
        x = m.input("x", 6)
        h = Bernoulli("h", logits=Affine(x, 3, name="enc"))
        g = Bernoulli("g", logits=Affine(h, 2, name="mid"))
        z = Normal("z", loc=Affine(x, 2, name="zloc"), scale=ppl.softplus(ppl.param("zs", 2)))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("prior", ppl.bernoulli_nll(ppl.param("prior", 2), target=g))
        m.cost("recon", ppl.bernoulli_nll(Affine(g, 6, name="dec"), target=x))
        m.cost("zcost", ppl.total(ppl.tanh(z) * z))
    return m


@pytest.mark.parametrize("relax,kernel", [("relax", "relax.relax_paper_bwd"), ("relax_blackbox", "relax.relax_bwd")])
def test_relax_rebar_price_parity(relax, kernel):
    """RELAX in both forms (the paper's: REBAR's rows plus its residual network) beside REBAR
    and Price: the same step on both targets."""
    est = {"h": relax, "g": "rebar", "z": "price"}
    cpu, gpu = _parity(estimator_net, estimators=est)
    assert kernel in gpu.source and "rebar.rebar_bwd" in gpu.source and "price.price_scale_grad" in gpu.source


def test_lax_parity():
    """LAX on the Normal node (its control variate on the data context x, phi's variance gradient)
    beside DisARM Bernoulli nodes: the same step on both targets."""
    cpu, gpu = _parity(estimator_net, estimators={"h": "disarm", "g": "disarm", "z": "lax"})
    assert "core.lax_normal_bwd" in gpu.source
    assert np.abs(cpu.grad({"x": X}, seed=0)[1]["lax.z"]).max() > 0


@njit
def _pair_cost(b):
    return b[0] * b[1]


def test_blackbox_cost_is_refused_on_cuda():
    with Model("bb_cuda") as m:
        x = m.input("x", 6)
        h = Bernoulli("h", logits=Affine(x, 3, name="enc"))
        m.cost("bb", ppl.blackbox(_pair_cost, [h]))
    with pytest.raises(ppl.ModelError, match="runs a Python/@njit function per row on the CPU"):
        m.compile(dtype=np.float64, estimators="score", target="cuda")


def test_a_kernel_missing_on_cuda_names_the_node_and_the_kernel(monkeypatch):
    """The CUDA target's check reads the kernel registry: drop one kernel's CUDA implementation and
    the compile refuses, naming the node, its estimator and the kernel (never a failure inside the step)."""
    from ppl.kernels.cuda import core as gpu
    from ppl.kernels import registry  # noqa: F401 (importing gpu registers the families' kernels)
    monkeypatch.delitem(registry.lookup("price", "price_scale_grad").impls, "cuda")
    with Model("cuda_missing") as m:
        x = m.input("x", 3)
        z = Normal("z", Affine(x, 2, name="mu"), ppl.softplus(Affine(x, 2, name="sd")))
        m.cost("c", ppl.total(ppl.tanh(z)))
    with pytest.raises(ppl.ModelError, match=r"no CUDA kernel for 'z' \(price: price.price_scale_grad\).*target='cpu'"):
        m.compile(estimators="price", target="cuda")
    m.compile(estimators="pathwise", target="cuda")   # the other estimators' kernels are all there


def test_no_device_is_a_clear_error(monkeypatch):
    from numba import cuda

    from ppl.targets import TargetUnavailable
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(TargetUnavailable, match="no CUDA device was found.*NUMBA_ENABLE_CUDASIM=1"):
        sbn().compile(dtype=np.float64, target="cuda")


def test_numpy_without_row_stack_is_a_clear_error(monkeypatch):
    """numba-cuda 0.30.4's array typing registers np.row_stack, which NumPy 2.5 removed: every
    first kernel compile fails with an AttributeError. compile(target="cuda") says so and what to
    do (the failing import is simulated here)."""
    import importlib

    from ppl import targets
    monkeypatch.delattr(np, "row_stack", raising=False)
    real = importlib.import_module

    def fake(name, *a, **k):
        if name == targets._ARRAY_TYPING:
            raise AttributeError("module 'numpy' has no attribute 'row_stack'")
        return real(name, *a, **k)
    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(targets.TargetUnavailable, match=r"numpy.row_stack.*pip install 'numpy<2.5'"):
        sbn().compile(dtype=np.float64, target="cuda")
    monkeypatch.undo()
    sbn().compile(dtype=np.float64, target="cuda")   # without the failing import: no error


def test_cli_target_cuda_without_gpu_exits_2():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("a GPU is present")
    r = subprocess.run([sys.executable, "-m", "ppl.cli", "train", "sbn", "--target", "cuda", "--steps", "1"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "no CUDA device was found" in r.stderr


def sbn2():
    """Two layers: with DisARM (or REBAR) on both, the upper draw repeats across the lower node's
    configurations, so layers reading it run on fewer rows (rows.gather_rows / rows.fold_into)."""
    with Model("sbn2_cuda") as m:
        x = m.input("x", 6)
        h = Bernoulli("h", logits=Affine(x, 3, name="enc"))
        h2 = Bernoulli("h2", logits=Affine(h, 2, name="enc2"))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("entropy2", ppl.log_prob(h2))
        m.cost("prior", ppl.bernoulli_nll(Affine(h2, 3, name="up"), target=h))
        m.cost("recon", ppl.bernoulli_nll(Affine(h, 6, name="dec"), target=x))
    return m


def test_rows_merged_below_two_layers_parity():
    cpu, gpu = _parity(sbn2, estimators=("rebar", {"train": False}))
    assert "rows.gather_rows" in gpu.source and "rows.fold_into" in gpu.source


def test_the_step_reads_the_device_once_and_a_failed_check_still_raises(monkeypatch):
    """The CUDA step's loss terms and checks add into one device array (`sink_`) read back once
    per call (lowering/printer.py); a failed check still raises its own error, and the loss is the
    CPU's (test_sbn_parity). Counted: the copies back to the host during one step call."""
    from ppl.kernels.native import launch
    gpu = sbn().compile(dtype=np.float64, seed=1, target="cuda", estimators="disarm")
    assert gpu.source.count(".copy_to_host()") == 1 and "if not " not in gpu.source
    gpu.grad({"x": X})
    made = []
    real = launch.sink

    def counted(n):
        out = real(n)
        made.append(out)
        return out
    monkeypatch.setattr(gpu.module, "sink_of_", counted)
    copies, inside, entry = [], [], gpu.entry
    real_copy = type(real(1)).copy_to_host
    monkeypatch.setattr(type(real(1)), "copy_to_host",
                        lambda self, *a, **k: (copies.append(self) if inside else None) or real_copy(self, *a, **k))

    def step(*args):
        inside.append(1)
        try:
            return entry(*args)
        finally:
            inside.clear()
    monkeypatch.setattr(gpu, "entry", step)
    gpu.grad({"x": X})
    # in the step, its one read (before: one per loss term and per check, 4 here)
    assert len(made) == 1 and len(copies) == 1 and copies[0] is made[0]
    gpu.pull()
    gpu.params["enc.W"][0, 0] = np.nan
    gpu.push()
    with pytest.raises(ppl.ModelError, match=r"Bernoulli 'h': logits 'enc' has NaN or inf values"):
        gpu.grad({"x": X})


def test_zeroed_buffers_join_the_kernels_over_their_rows():
    """The CUDA step zeroes each cotangent buffer inside the joined kernel over its rows and the
    gradient as that kernel's side work (lowering/launches.py), where the CPU step (its two bodies)
    makes one call per buffer: no zeroing is a launch of its own here, and each buffer the CPU
    zeroes is zeroed by a joined kernel; the gradient is the CPU's (test_sbn_parity). A run of
    zeroed buffers that joins nothing is one rows.zero_all launch, which zeroes 1D, 2D and empty
    arrays of any sizes (oracle: zeros)."""
    from numba import cuda
    from ppl.kernels.cuda import rows
    gpu = sbn().compile(dtype=np.float64, seed=1, target="cuda", estimators="disarm")
    cpu = sbn().compile(dtype=np.float64, seed=1, estimators="disarm")
    bwd = [line.strip() for line in gpu.source[gpu.source.index("mode == 0"):].splitlines()]
    assert not [line for line in bwd if line.startswith(("rows.zero1(", "rows.zero2(", "rows.zero_all("))]
    joined = [line for line in bwd if line.startswith("rows.fused(") and "'rows.zero2'" in line]
    assert joined[0].startswith("rows.fused((('rows.zero1', (0,), 'side')") and "), grad, " in joined[0]
    zeroed = set(re.findall(r"rows\.zero2\((\w+)\)", cpu.source))
    assert len(zeroed) >= 3
    assert all(any(f" {name}," in line or f" {name})" in line for line in joined) for name in zeroed)
    arrays = [np.ones(n, np.float32) for n in (1, 700)] + [np.ones(s, np.float64) for s in ((3, 5), (0, 4), (300, 7))]
    dev = [cuda.to_device(a) for a in arrays]
    rows.zero_all(*dev)
    assert all(d.copy_to_host().shape == a.shape and not d.copy_to_host().any() for d, a in zip(dev, arrays))


def test_a_run_of_loss_terms_is_one_launch():
    """The CUDA step adds its loss terms into the sink with one rows.weighted_totals_into launch
    (lowering/printer.py); oracle: one rows.weighted_total_into call per cost, the same bits in
    the totals and in each word (the same block_sum per cost), a weight-0 row's -inf cost
    included."""
    from numba import cuda
    from ppl.kernels.cuda import rows
    gpu = sbn().compile(dtype=np.float64, seed=1, target="cuda", estimators="disarm")
    (joined,) = [line.strip() for line in gpu.source.splitlines() if "weighted_total" in line]
    assert joined.startswith("rows.weighted_totals_into(rw_, tot_, sink_, c_") and joined.count(", c_") == 3
    g = np.random.default_rng(0)
    rw = g.random(300)
    rw[7] = 0.0
    costs = [g.standard_normal(300) for _ in range(3)]
    costs[1][7] = -np.inf
    acc0 = g.standard_normal(300)
    one = [cuda.to_device(a) for a in (acc0, np.zeros(8))]
    each = [cuda.to_device(a) for a in (acc0, np.zeros(8))]
    dev_rw, dev_c = cuda.to_device(rw), [cuda.to_device(c) for c in costs]
    rows.weighted_totals_into(dev_rw, one[0], one[1], dev_c[0], 2, dev_c[1], 5, dev_c[2], 6)
    for c, k in zip(dev_c, (2, 5, 6)):
        rows.weighted_total_into(dev_rw, c, each[0], each[1], k)
    for a, b in zip(one, each):
        assert np.array_equal(a.copy_to_host(), b.copy_to_host())
    assert np.isfinite(one[1].copy_to_host()).all() and one[1].copy_to_host()[[2, 5, 6]].all()


def test_a_gradient_that_is_not_finite_is_seen_on_the_device():
    """CudaProgram.gradient_is_finite (fit's check after each step) counts on the device; oracle:
    numpy.isfinite of the gradient copied back."""
    gpu = sbn().compile(dtype=np.float64, seed=1, target="cuda")
    gpu.grad({"x": X})
    assert gpu.gradient_is_finite() and np.isfinite(gpu.d_grad.copy_to_host()).all()
    for bad in (np.nan, np.inf, -np.inf):
        g = gpu.d_grad.copy_to_host()
        g[len(g) // 2] = bad
        gpu.d_grad.copy_to_device(g)
        assert not gpu.gradient_is_finite()
    gpu.grad({"x": X})
    assert gpu.gradient_is_finite()


def test_a_laws_checks_join_the_kernels_around_them():
    """The checks of a Normal's loc and scale (their counts: declared row kernels adding to a word of
    the sink, lowering/launches.py) join the step's kernels over the same rows: none is a launch of
    its own, and the scale's layer, its checks and the draw are one kernel. A NaN in the loc's
    layer still raises the loc's own error, and one in the scale's layer the scale's."""
    gpu = vae().compile(dtype=np.float64, seed=1, target="cuda", estimators="pathwise")
    lines = [line.strip() for line in gpu.source.splitlines()]
    assert not [line for line in lines if "_into(" in line and not line.startswith(("rows.fused(", "rows.weighted"))]
    (joined,) = [line for line in lines if "all_positive_into" in line]
    assert "core.softplus_fwd" in joined and "core.normal_sample" in joined and joined.count("all_finite2_into") == 2
    gpu.grad({"x": X})
    for layer, name in (("loc", "loc"), ("sc", "scale")):
        gpu.pull()
        keep = gpu.params[f"{layer}.W"][0, 0]
        gpu.params[f"{layer}.W"][0, 0] = np.nan
        gpu.push()
        with pytest.raises(ppl.ModelError, match=f"Normal 'z': {name} "):
            gpu.grad({"x": X})
        gpu.params[f"{layer}.W"][0, 0] = keep
        gpu.push()


def test_the_backwards_column_sums_are_one_launch_at_its_end():
    """The CUDA step's column sums (each bias's gradient, split from its layer's backward call, and
    a broadcast parameter's) sink to the end of the backward as one rows.column_sums_all launch
    (lowering/launches.py, sums_last); the gradient is the CPU's (test_sbn_parity). A sum stops
    before a statement that reaches its gradient's view or its cotangent (its own, joined with
    any others stopped there), a loop or a check. The kernel against NumPy's float64 sums:
    widths across its 32-column blocks, an empty pair, NaN kept, blocks of one row of threads for
    few rows; over 256 rows, where cuBLAS is in use (emulated here), a product per sum."""
    from numba import cuda
    from ppl.calls import Call, KernelRef, View
    from ppl.kernels.cuda import rows
    from ppl.lowering import ir, launches
    gpu = sbn().compile(dtype=np.float64, seed=1, target="cuda", estimators="disarm")
    bwd = [line.strip() for line in gpu.source[gpu.source.index("mode == 0"):].splitlines()]
    sums = [line for line in bwd if "column_sums_all" in line or "broadcast_rows_bwd" in line]
    assert len(sums) == 1 and sums[0].startswith("rows.column_sums_all(") and sorted(
        sums[0][21:-1].split(", ")[1::2]) == ["gp_dec_b", "gp_enc_b", "gp_prior"], sums
    assert bwd[bwd.index(sums[0]) + 1] == "return loss"
    assert [line for line in bwd if line.startswith("core.affine_bwd(")] and not any(
        "_b)" in line for line in bwd if line.startswith("core.affine_bwd("))

    def st(name, *args, fam="core"):
        return ir.Stmt(Call(KernelRef(fam, name), args), None)
    va, vb, vc = View("gp_a", "a"), View("gp_b", "b"), View("gp_c", "c")
    stmts = [st("broadcast_rows_bwd", "g_a", va), st("broadcast_rows_bwd", "g_b", vb), st("x_bwd", "v", "g_d"),
             st("affine_acc", "v", vb, "w"), st("broadcast_rows_bwd", "g_d", vc), st("y_bwd", "g_a", "g_d")]
    got = [str(s) for s in launches.sums_last(stmts)]
    assert got == ["core.x_bwd(v, g_d)", "core.broadcast_rows_bwd(g_b, gp_b)", "core.affine_acc(v, gp_b, w)",
                   "rows.column_sums_all(g_a, gp_a, g_d, gp_c)", "core.y_bwd(g_a, g_d)"], got

    g = np.random.default_rng(4)
    # one kernel (8 rows a thread or more; a thread a column for at most 32 rows); cuBLAS's over 256 rows
    for shapes in (((50, 70), (9, 32), (40, 1), (0, 5)), ((32, 40), (3, 5)), ((300, 40), (7, 3))):
        gs = [g.standard_normal(s) for s in shapes]
        gs[0][3, 33] = np.nan   # the first array is 33 columns wide or more
        outs = [g.standard_normal(x.shape[1]) for x in gs]
        dev = [cuda.to_device(o) for o in outs]
        rows.column_sums_all(*(a for x, d in zip(gs, dev) for a in (cuda.to_device(x), d)))
        for x, o, d in zip(gs, outs, dev):
            np.testing.assert_allclose(d.copy_to_host(), o + x.sum(0), rtol=1e-12, atol=1e-12)
        assert np.isnan(dev[0].copy_to_host()[33]) and np.isfinite(np.delete(dev[0].copy_to_host(), 33)).all()
