"""CUDA twins (kernels/gpu*.py) against their CPU modules, kernel by kernel.

Runs under the CUDA simulator when there is no GPU (tests/conftest.py). Every public
function of cpu/core.py, cpu/noise.py, cpu/rows.py and the other cpu_*.py modules has a twin with the
same name and arguments, and a case here: the same random inputs go to both, then EVERY
array argument (outputs, accumulated gradients, in-place state, and the inputs, which must
be left alone) and the return value are compared. Gradients start non-zero (so ``+=`` is
checked) and some are passed as ``shape[0] == 0`` (skipped).

Tolerances (simulator):
* float64: rtol 1e-9 (291 of 296 compared arrays are bit-identical, the others within 1e-12).
  The per-element math is the same Python source and the simulator's ``math`` is the libm the
  CPU build calls; the differences are summation orders (affine products vs BLAS, one-block
  tree reductions vs serial loops), a few ulp of the result, more where a sum cancels. The
  bound is 1e-9, not 1e-12, for this machine's windows of libm results ~1e-11 off in every
  process (tests/machine.py), which made a kernel's two runs 1.4e-11 apart; a kernel error
  is orders of magnitude larger.
* float32: rtol 2e-6, i.e. a few ulp (282 of 296 bit-identical). The simulator evaluates
  ``math.*`` of a float32 in double and rounds once where the CPU calls the float32 libm
  (expf, log1pf, ...), and it follows NumPy's promotion (float32 * Python float stays
  float32) where numba promotes to float64 (the row kernels' float64 literals).
On a real GPU (not testable here) float64 libm calls go to libdevice (<= 2 ulp apart from
glibc) and NVVM contracts a * b + c into FMA by default, so expect a few ulp as well.
* noise fills: identical bits for both dtypes: uniforms and the Philox words are integer
  math; the float32 transforms are rng.py's polynomial log/sincos in float32 NumPy scalars;
  float64 transforms call the same libm.
"""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
from machine import RTOL_LIBM
from numba import cuda
from numba.core.registry import CPUDispatcher
from numpy.testing import assert_allclose, assert_array_equal

from ppl.kernels.cpu import (
    core as cpu, noise as cpu_noise, rows as cpu_rows)
from ppl.kernels.cuda import (
    core as gpu, noise as gpu_noise, rows as gpu_rows)
from ppl.kernels import families, parity_cases, registry
from ppl.kernels.declare import declared, parity as family_parity
from ppl.kernels.cpu.relax import relax_size
from ppl.kernels.families import checks
from ppl.kernels.parity_cases import D, Gen, I, K, R, G  # noqa: F401


pytestmark = pytest.mark.cuda
ON_DEVICE = os.environ.get("NUMBA_ENABLE_CUDASIM") != "1"   # a real GPU, not the simulator

PAIRS = [(cpu, gpu), (cpu_noise, gpu_noise), (cpu_rows, gpu_rows)]


def public_kernels(mod):
    """The @njit functions a CPU module defines (not imports) under a public name."""
    return sorted(n for n, v in vars(mod).items()
                  if isinstance(v, CPUDispatcher) and not n.startswith("_")
                  and v.py_func.__module__ == mod.__name__)


# extra variants: the other branch of a kernel (value-returning ones, skipped gradients,
# first / later step of the running baseline, plain-number hyper-parameters)
VARIANTS = {
    "all_positive[nan]": ("all_positive", lambda g: (np.where(np.arange(D) == 3, np.nan,
                                                              g.pos(R, D)).astype(g.dt),)),
    "all_finite[inf]": ("all_finite", lambda g: (np.where(np.arange(D) == 2, np.inf,
                                                          g.x(R, D)).astype(g.dt),)),
    "all_finite2[nan]": ("all_finite2", lambda g: (np.where(np.arange(D) == 4, np.nan,
                                                            g.x(R, D)).astype(g.dt),)),
    "all_finite2[-inf]": ("all_finite2", lambda g: (np.where(np.arange(D) == 0, -np.inf,
                                                             g.x(R, D)).astype(g.dt),)),
    "loo_baseline_marginal[two digits, zero weights]": ("loo_baseline_marginal", lambda g: (
        g.x(48), np.where(np.arange(48) % 8 < 4, 0.0, g.pos(48)).astype(g.dt), 2, 8, (1, 4), (2, 2),
        g.out(48))),
    "moving_average_baseline[later]": ("moving_average_baseline", lambda g: (
        g.x(R), g.pos(R), np.array([0, 0.3, 1, 0], g.dt), 1, 0.9, g.out(R), True)),
    "moving_average_baseline[frozen]": ("moving_average_baseline", lambda g: (
        g.x(R), g.pos(R), g.x(4), 1, 0.9, g.out(R), False)),
    "binary_concrete_bwd[skip]": ("binary_concrete_bwd", lambda g: (
        g.x(R, D), g.x(R, D), 0.7, g.u(R, D), g.x(R, D), g.x(R, D), g.skip(1))),
    "gumbel_softmax_bwd[skip]": ("gumbel_softmax_bwd", lambda g: (
        g.x(R, D), g.x(R, D), 0.5, K, g.u(R, D), g.x(R, D), g.skip(2), g.x(1))),
    "affine_bwd[skip]": ("affine_bwd", lambda g: (
        g.x(R, I), g.x(I, D), g.x(R, D), g.skip(2), g.x(I, D), g.skip(1))),
    "sgd_update[float]": ("sgd_update", lambda g: (g.x(9), g.x(9), 0.1)),
    # alpha's variance gradient (float64 only: a sum of products, a few float32 ulps apart in cancellation)
    "double_cv_grad[train]": ("double_cv_grad", lambda g: (
        g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.pos(R), 2, 2, (1,), (2,), g.h(-0.8), True, g.out(R), g.out(R),
        g.out(R), g.out(R, D), g.x(R, D), g.out(R))),
    "double_cv_grad[plain]": ("double_cv_grad", lambda g: (
        g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.pos(R), 2, 1, (1,), (1,), g.h(-0.8), False, g.out(R), g.out(R),
        g.out(R), g.out(R, D), g.x(R, D), g.skip(1))),
    "lax_normal_bwd[no context, scale skipped, untrained]": ("lax_normal_bwd", lambda g: (
        g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.pos(R), g.skip(2), 0.5 * g.x(relax_size(D, 0, 3)), 3,
        g.x(R, D), g.skip(2), g.x(relax_size(D, 0, 3)), False)),
    "probit_log_prob_bwd[skip]": ("probit_log_prob_bwd", lambda g: (
        4 * g.x(R, D), g.bits(R, D), g.x(R), g.skip(2), g.x(R, D))),
    **checks.FAILING,   # the laws' parameter checks, each failing once
}
FLOAT32 = ["sigmoid_bwd", "bernoulli_log_prob", "normal_log_prob_bwd", "gumbel_softmax_bwd",
           "softmax_xent_bwd", "adam_update", "gaussian_kl_bwd", "probit_log_prob_bwd", "laplace_sample_bwd",
           "laplace_log_prob_bwd", "reinmax_bernoulli_bwd", "reinmax_categorical_bwd", "gumbel_rao_bernoulli_bwd",
           "gumbel_rao_categorical_bwd", "gapped_st_bernoulli_bwd", "gapped_st_categorical_bwd", "double_cv_grad",
           "cat_antithetic_sample", "cat_disarm_grad", "cat_disarm_grad_marginal", "us_forward", "us_grad"]
NOISE = ["fill_uniform", "fill_normal", "fill_logistic", "fill_gumbel",
         "fill_bernoulli_logit", "fill_bernoulli_prob", "fill_uniform_narrow", "fill_normal_narrow",
         "fill_logistic_narrow", "fill_gumbel_narrow"]
parity_cases.declare()
# the parity cases come from the registry: every kernel with both targets and an argument maker
PARITY = {k.name: k for k in registry.kernels() if {"cpu", "cuda"} <= set(k.impls) and k.args is not None}


def to_device(a):
    return cuda.to_device(a) if isinstance(a, np.ndarray) else a


def check(name, builder, dtype, ignore=(), seed=0):
    """Run the CPU kernel and its twin on the same inputs; compare every array and the result."""
    k = PARITY[name]
    built = builder(Gen(seed, dtype))
    c_args = [a.copy() if isinstance(a, np.ndarray) else a for a in built]
    g_args = [to_device(a) for a in built]
    c_ret = k.impls["cpu"](*c_args)
    g_ret = k.impls["cuda"](*g_args)
    tol = dict(rtol=RTOL_LIBM, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-6)

    def close(got, want, what):
        assert_allclose(got, want, err_msg=what, **tol)

    for i, (c, gd) in enumerate(zip(c_args, g_args)):
        if isinstance(c, np.ndarray) and i not in ignore:
            close(gd.copy_to_host(), c, f"{name}: argument {i}")
    if c_ret is None:
        assert g_ret is None, name
    elif isinstance(c_ret, (bool, np.bool_)):
        assert g_ret is bool(c_ret), name
    else:
        close(g_ret, c_ret, f"{name}: returned value")


def _builder(name):
    spec = PARITY[name].args
    return spec if callable(spec) else spec[0], () if callable(spec) else spec[1]


# ------------------------------------------------------------------------------ tests
def test_every_public_cpu_kernel_has_a_twin_and_a_case():
    for cmod, gmod in PAIRS:
        for name in public_kernels(cmod):
            assert name in PARITY or name in NOISE, f"{cmod.__name__}.{name} has no parity case"
            twin = getattr(gmod, name, None)
            assert callable(twin), f"{gmod.__name__} lacks {name}"
            c_params = list(inspect.signature(getattr(cmod, name).py_func).parameters)
            g_params = list(inspect.signature(twin).parameters)
            assert g_params == c_params, f"{name}: {g_params} != {c_params}"


def test_families_declared_once_have_both_targets_and_cases():
    """A family of kernels/families/ is one file: each kernel is its body and loop shape; the CPU
    kernel and the CUDA launcher are made from it (or the launcher is hand-written: the family's
    ``CUDA`` makers, e.g. the affine layers' tiled products), both are what ``core`` binds on each
    target, both are registered, and the family's own PARITY declares every case."""
    assert families.NAMES, "no family declared once"
    for fam in families.modules():
        short = fam.__name__.rsplit(".", 1)[1]
        kernels = declared(fam)
        assert kernels, fam.__name__
        cases = family_parity(fam)
        for name, k in kernels.items():
            assert name in cases, f"{fam.__name__}.{name} has no parity case"
            assert getattr(cpu, name) is k
            twin = getattr(gpu, name)
            assert list(inspect.signature(twin).parameters) == list(inspect.signature(k.py_func).parameters)
            reg = registry.lookup(short, name)
            assert reg.impls["cpu"] is k and reg.impls["cuda"] is twin
            assert registry.lookup("core", name) is reg
            assert reg.generated or name in getattr(fam, "CUDA", {}), f"{short}.{name}: neither generated nor a CUDA maker"
            assert name in PARITY


def test_a_declared_kernel_loads_from_the_disk_cache_in_a_new_process(tmp_path):
    """The CPU kernel of a declared body is generated source; compiled under the family file's
    name, Numba's cache finds it in the next process (a closure-made kernel would miss)."""
    code = ("import numpy as np\n"
            "from ppl.kernels.cpu import core as cpu\n"
            "a = np.ones((2, 3)); out = np.zeros(2)\n"
            "cpu.laplace_log_prob(a, a, a, out)\n"
            "print(sum(cpu.laplace_log_prob.stats.cache_hits.values()), "
            "sum(cpu.laplace_log_prob.stats.cache_misses.values()))\n")
    env = dict(os.environ, PPL_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
            for _ in range(2)]
    assert runs == [["0", "1"], ["1", "0"]], runs


def test_registry_links_both_targets():
    """Every public kernel of a CPU module is registered with its CPU function and its CUDA
    launcher; check_cuda_kernels reads the same registry."""
    for cmod, gmod in PAIRS:
        for name in public_kernels(cmod):
            k = registry.lookup("core", name) or next(
                k for k in registry.kernels() if k.name == name and k.impls.get("cpu") is getattr(cmod, name))
            assert k.impls["cpu"] is getattr(cmod, name), name
            assert k.impls["cuda"] is getattr(gmod, name), name
            assert registry.targets(k.family, name) == {"cpu", "cuda"}
    assert registry.targets("core", "no_such_kernel") == set()
    assert registry.lookup("core", "bernoulli_log_prob").family == "bernoulli"   # cuda/core.py re-exports the families
    gen = [k for k in registry.kernels() if k.generated]
    assert len(gen) > 100, len(gen)
    assert registry.lookup("core", "sigmoid_fwd").shapes == ("cells",)


@pytest.mark.parametrize("name", sorted(PARITY))
def test_parity_float64(name):
    build, ignore = _builder(name)
    check(name, build, np.float64, ignore)


@pytest.mark.parametrize("name", FLOAT32)
def test_parity_float32(name):
    build, ignore = _builder(name)
    check(name, build, np.float32, ignore)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parity_variants(variant):
    name, build = VARIANTS[variant]
    check(name, build, np.float64, ())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fill", NOISE)
def test_noise_streams_identical(fill, dtype):
    """Same (seed, stream, row, col, step) -> same values (bit for bit, float32 transforms within
    2 ulp; on a GPU float32 and float64 transforms within 8 ulp); 7 columns exercise a
    partial Philox block for both lane counts, and a seed above 2**63 both key words."""
    gen = Gen(1, dtype)
    rows, cols = 3, 1 if fill.endswith("_narrow") else 7   # the narrow fills: rows of 1 column
    for seed, stream, step in [(12345, 3, 0), (np.uint64(2**64 - 5), 17, 2**32 + 9)]:
        c_out = gen.out(rows, cols)
        g_out = cuda.to_device(gen.out(rows, cols))
        if fill.startswith("fill_bernoulli"):
            x = gen.x(rows, cols) if fill.endswith("logit") else gen.u(rows, cols)
            getattr(cpu_noise, fill)(c_out, x, seed, stream, step)
            getattr(gpu_noise, fill)(g_out, cuda.to_device(x), seed, stream, step)
        else:
            getattr(cpu_noise, fill)(c_out, seed, stream, step)
            getattr(gpu_noise, fill)(g_out, seed, stream, step)
        if (dtype == np.float32 or ON_DEVICE) and fill not in ("fill_uniform",) and not fill.startswith("fill_bernoulli"):
            # float32 transforms may differ by an ulp: seen between the CPU and the simulator after
            # other tests ran in the same process; a GPU's FMAs do the same, and on a GPU the float64
            # transforms call libdevice's log / sincos (measured on an H100: up to 4 ulp from glibc,
            # where log(u) - log1p(-u) cancels); uniforms are integer math and bit-identical everywhere
            np.testing.assert_array_max_ulp(g_out.copy_to_host(), c_out, maxulp=8 if ON_DEVICE else 2)
        else:
            assert_array_equal(g_out.copy_to_host(), c_out, err_msg=f"{fill} seed {seed}")


def test_noise_rejects_bad_arrays():
    with pytest.raises(ValueError, match="out's shape"):
        gpu_noise.fill_bernoulli_logit(cuda.to_device(np.zeros((2, 3))),
                                       cuda.to_device(np.zeros((3, 2))), 1, 0, 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        gpu_noise.fill_uniform(cuda.to_device(np.zeros((2, 3), np.int64)), 1, 0, 0)


def test_import_without_cuda_and_clear_error():
    """Without a GPU and without the simulator the modules import; a call says what to do."""
    code = ("import numpy as np\n"
            "from numba import cuda\n"
            "from ppl.kernels.cuda import core as gpu, noise as gpu_noise, rows as gpu_rows\n"
            "if cuda.is_available():\n"
            "    print('HAS-GPU')\n"
            "else:\n"
            "    try:\n"
            "        gpu_rows.zero1(np.zeros(3))\n"
            "    except RuntimeError as e:\n"
            "        print(e)\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    if "HAS-GPU" not in res.stdout:
        assert "no CUDA device was found" in res.stdout
        assert "NUMBA_ENABLE_CUDASIM=1" in res.stdout


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_products_tiled_and_per_entry_against_numpy(dtype, monkeypatch):
    """cuda/products.py: the tiled product (shapes crossing its 64 x 64 tiles and 16-deep slices),
    the per-entry one and cuBLAS's (emulated in the simulator), in the three layouts the affine
    layers use (x W + b, g W^T, x^T g), against NumPy in float64; column sums and row spreading
    on both sides of FEW_ROWS (ppl's kernels and cuBLAS's ones @ g); the finiteness count. In the
    simulator ppl's tiled and column-sum kernels run in float64 only: their float32 twins are the
    same Python code there (on a GPU, both)."""
    from ppl.kernels.cuda import cublas
    from ppl.kernels.cuda import products as P
    rng = np.random.default_rng(7)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    M, K_, N = 65, 17, 3
    ways = (P.tiled,) if dtype == np.float64 or ON_DEVICE else ()
    ways += (P.per_entry,) + ((P.by_cublas,) if cublas.why() is None else ())
    for ta, tb, bias in ((False, False, True), (False, True, False), (True, False, False)):
        a = rng.standard_normal((K_, M) if ta else (M, K_)).astype(dtype)
        b = rng.standard_normal((N, K_) if tb else (K_, N)).astype(dtype)
        c0, v = rng.standard_normal((M, N)).astype(dtype), rng.standard_normal(N).astype(dtype)
        want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64) + (v if bias else c0)
        for way in ways:
            c = cuda.to_device(c0.copy())
            way(cuda.to_device(a), ta, cuda.to_device(b), tb, c, cuda.to_device(v), bias)
            assert_allclose(c.copy_to_host(), want, err_msg=f"{way.__name__} ta={ta} tb={tb}", **tol)
    if not ON_DEVICE:   # the simulator: levels of a launch each past 70 rows (as past 512 on a GPU), not 1,027 rows
        monkeypatch.setattr(P, "SPREAD_LEVEL", P.FEW_ROWS + 6)
    for R in (P.FEW_ROWS - 1, P.FEW_ROWS + 6, 2 * P.SPREAD_LEVEL + 3):
        g, o = rng.standard_normal((R, 5)).astype(dtype), rng.standard_normal(5).astype(dtype)
        for choice in ("tiled", "fp32")[0 if ways[0] is P.tiled else 1:]:   # ppl's kernels (as the tiled product); cuBLAS's
            with monkeypatch.context() as mp:
                mp.setenv("PPL_CUDA_PRODUCTS", choice)
                mp.setattr(cublas, "_STATE", {})
                out = cuda.to_device(o.copy())
                P.column_sums(cuda.to_device(g), out)
                assert_allclose(out.copy_to_host(), o + g.astype(np.float64).sum(0), **tol)
        for S in (2, 7):   # the last R: two levels a launch of their own, then one kernel
            x = rng.standard_normal((R, 5)).astype(dtype)
            d = cuda.to_device(x.copy())
            P.spread_rows(d, S)
            assert_array_equal(d.copy_to_host(), x[np.arange(R) // S])
    x = rng.standard_normal(300).astype(dtype)
    x[[3, 150, 299]] = [np.nan, np.inf, -np.inf]
    res = cuda.to_device(np.full(2, 5.0))
    P.count_not_finite(cuda.to_device(x), res)
    assert res.copy_to_host()[0] == 3


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_cublas_arguments_compute_the_row_major_product(ta, tb):
    """cuda/cublas.gemm_args: the column-major gemm arguments of the row-major c += op(a) op(b),
    run through BLAS's column-major definition on the arrays' buffers (no GPU needed), give
    NumPy's product, for whole arrays, row-strided views (a leading dimension past the columns),
    one row and an empty shared index; a layout that does not map is refused."""
    from ppl.kernels.cuda.cublas import emulated_gemm, gemm_args
    rng = np.random.default_rng(11)
    for M, K_, N in ((7, 5, 3), (1, 4, 6), (5, 0, 2)):
        big = [rng.standard_normal((12, 20)) for _ in range(3)]
        a = big[0][:K_, 1:1 + M] if ta else big[0][:M, 1:1 + K_]
        b = big[1][:N, 2:2 + K_] if tb else big[1][:K_, 2:2 + N]
        c = big[2][:M, 3:3 + N]
        want = c + (a.T if ta else a) @ (b.T if tb else b)
        untouched = big[2].copy()
        args = gemm_args(a, ta, b, tb, c)
        emulated_gemm(*args)
        assert_allclose(c, want, rtol=1e-12, atol=1e-12)
        untouched[:M, 3:3 + N] = want
        assert_array_equal(big[2], untouched)   # nothing outside c written
    x = rng.standard_normal((6, 8))
    assert gemm_args(x[:, ::2], False, x[:4, :3], False, np.zeros((6, 3))) is None


def test_products_choice_is_checked(monkeypatch):
    """PPL_CUDA_PRODUCTS names tf32 (the default: JAX's precision), fp32 or tiled; anything else
    is refused with the choices. cuBLAS's handles take TF32's math mode unless fp32 is named."""
    from ppl.kernels.cuda import cublas
    monkeypatch.delenv("PPL_CUDA_PRODUCTS", raising=False)
    assert cublas._choice() == "tf32" and cublas.math_mode() == cublas.TF32_MATH == 3
    for ok, mode in (("tf32", 3), ("fp32", 0), ("tiled", 3)):
        monkeypatch.setenv("PPL_CUDA_PRODUCTS", ok)
        assert cublas._choice() == ok and cublas.math_mode() == mode
    for bad in ("fast", "cublas"):
        monkeypatch.setenv("PPL_CUDA_PRODUCTS", bad)
        with pytest.raises(ValueError, match=f"PPL_CUDA_PRODUCTS='{bad}'.*'tf32'.*'fp32'.*'tiled'"):
            cublas._choice()


def test_float32_products_are_tf32_by_default_and_fp32_when_asked(monkeypatch):
    """On a GPU with TF32 (compute capability 8.0+), and in the simulator's emulated cuBLAS, a
    float32 product (256 x 784 x 200, a layer of the digits' SBN) under the default is within
    TF32's error of the float64 product and farther than float32's (> 1e-5, normwise); under
    PPL_CUDA_PRODUCTS=fp32 within float32's (< 1e-5). The tests' own setting (fp32,
    tests/conftest.py) is back after."""
    from ppl.kernels.cuda import cublas, products
    if ON_DEVICE and cuda.get_current_device().compute_capability < (8, 0):
        pytest.skip("no TF32 before compute capability 8.0")
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((256, 784)), rng.standard_normal((784, 200))
    want = a @ b
    errors = {}
    try:
        for choice in ("tf32", "fp32"):
            monkeypatch.setenv("PPL_CUDA_PRODUCTS", choice)
            cublas._STATE.clear()   # a handle made under this choice
            c = cuda.to_device(np.zeros((256, 200), np.float32))
            products.matmul(cuda.to_device(a.astype(np.float32)), False, cuda.to_device(b.astype(np.float32)),
                            False, c)
            assert cublas.why() is None
            errors[choice] = np.linalg.norm(c.copy_to_host() - want) / np.linalg.norm(want)
    finally:
        monkeypatch.undo()
        cublas._STATE.clear()
    assert 1e-5 < errors["tf32"] < 3e-3 and errors["fp32"] < 1e-5, errors


def test_a_check_counts_its_failing_items_over_the_grid():
    """A check's CUDA launcher (declare.count_launcher) counts failing items over blocks of the
    grid, each adding its count by one atomic add: here 1,200 cells over 2 blocks, 7 of them
    failing (NaN, -inf, 0 and negatives in both blocks). `into` adds the exact count to its sink
    word (twice: 14); the plain call says whether none failed."""
    from ppl.kernels.cuda import rows as gpu_rows
    a = np.random.default_rng(2).random((20, 60)) + 0.5
    bad = [(0, 0), (0, 59), (13, 7), (17, 3), (15, 59), (19, 0), (19, 59)]
    for (r, c), v in zip(bad, [np.nan, -np.inf, 0.0, -1.0, np.nan, -0.0, -2.0]):
        a[r, c] = v
    sink = cuda.to_device(np.zeros(3))
    d = cuda.to_device(a)
    gpu_rows.all_positive.into(d, sink, 1)
    gpu_rows.all_positive.into(d, sink, 1)
    assert_array_equal(sink.copy_to_host(), [0.0, 14.0, 0.0])
    assert gpu_rows.all_positive(d) is False
    assert gpu_rows.all_positive(cuda.to_device(np.abs(np.nan_to_num(a, nan=1.0, neginf=1.0)) + 1.0)) is True


def _rows_formed(k):
    return any(isinstance(g, registry.Rows) and g.formed
               for g in getattr(k.impls["cuda"], "__kernels__", []))


WIDE = sorted(n for n, k in PARITY.items() if _rows_formed(k)
              and n != "linear_baseline_fwd")   # its case's 10 weights are for 6 columns


@pytest.mark.parametrize("name", WIDE)
def test_parity_few_wide_rows(name, monkeypatch):
    """The row bodies with a lanes form on 4 rows of 300 columns (their parity cases, wider): on a
    GPU a block of lanes per row (native/launch.row_lanes), their sums combined over the block's
    warps, against the CPU."""
    fam = sys.modules[PARITY[name].impls["cpu"].py_func.__module__]
    monkeypatch.setattr(fam, "D", 300, raising=False)
    if ON_DEVICE:
        from ppl.kernels.native.launch import BLOCK, LANES, row_lanes
        assert row_lanes(4, 300) == (BLOCK if BLOCK > LANES == 32 else LANES)
    build, ignore = _builder(name)
    check(name, build, np.float64, ignore)


def test_tf32_rounding_of_the_emulated_products():
    """cuda/cublas._tf32 keeps 10 of float32's 23 mantissa bits, to nearest with ties away from
    zero (as the tensor cores take float32 inputs); infinities and NaN pass."""
    from ppl.kernels.cuda.cublas import _tf32
    e = 2.0 ** -10   # TF32's ulp at 1
    x = np.array([1 + e / 2, 1 + e / 4, -(1 + e / 2), 1 + 3 * e / 4, 3.0, np.inf, -np.inf, np.nan], np.float32)
    got = _tf32(x)
    assert_array_equal(got[:7], np.array([1 + e, 1.0, -(1 + e), 1 + e, 3.0, np.inf, -np.inf], np.float32))
    assert np.isnan(got[7])
