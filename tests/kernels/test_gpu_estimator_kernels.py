"""CUDA twins of the estimator kernels (kernels/cuda/relax.py, cuda/rebar.py)
against their CPU modules, kernel by kernel, in float64.

The same random inputs go to both; then EVERY array argument (outputs, accumulated
gradients, in-place state, and the inputs, which must be left alone) and the return value
are compared with rtol 1e-9. Accumulated arrays start non-zero so ``+=`` is checked. The
phi / eta / temperature sums are reduced in a different (fixed) order on the device, hence
the tolerance rather than bit equality.
"""
import inspect

import numpy as np
import pytest
from numba import cuda
from numba.core.registry import CPUDispatcher
from numpy.testing import assert_allclose

from ppl.kernels.cpu import rebar as cpu_rebar, relax as cpu_relax
from ppl.kernels.cuda import rebar as gpu_rebar, relax as gpu_relax

pytestmark = pytest.mark.cuda

R, D, K, C, H = 4, 6, 3, 2, 3   # rows, units (G = 2 groups of K), context width, hidden size
G = D // K
STRIDE = 2
RB = STRIDE * cpu_rebar.CONFIGS * 2   # REBAR rows (20): digit (r // 2) % 5, 4 drawn rows
RF = STRIDE * cpu_rebar.FIXED_CONFIGS * 2   # fixed eta and temperature (12): digit (r // 2) % 3
TRAINED, FIXED = cpu_rebar.CONFIGS, cpu_rebar.FIXED_CONFIGS
PAIRS = [(cpu_relax, gpu_relax), (cpu_rebar, gpu_rebar)]


def public_kernels(mod):
    return sorted(n for n, v in vars(mod).items()
                  if isinstance(v, CPUDispatcher) and not n.startswith("_")
                  and v.py_func.__module__ in (mod.__name__, "ppl.kernels.families." + mod.__name__.rsplit(".", 1)[1]))


class Gen:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def x(self, *shape):
        return self.rng.normal(size=shape)

    def pos(self, *shape):
        return self.rng.uniform(0.5, 2.0, size=shape)

    def u(self, *shape):
        return self.rng.uniform(0.02, 0.98, size=shape)

    def bits(self, *shape):
        return self.rng.integers(0, 2, size=shape).astype(np.float64)

    def out(self, *shape):
        return np.full(shape, 7.0)

    def skip(self, ndim):
        return np.empty((0,) * ndim)

    def h(self, v):
        return np.array([v], np.float64)


# ------------------------------------------------------------------------------ cases
def relax_bwd_case(g, train=True, ctx=True):
    a, u, v = g.x(R, D), g.u(R, D), g.u(R, D)
    b = g.out(R, D)
    cpu_relax.relax_sample(a, u, b)
    c = C if ctx else 0
    cx = g.x(R, C) if ctx else np.empty((0, 0))
    phi = 0.5 * g.x(cpu_relax.relax_size(D, c, H))
    return (a, u, v, b, g.x(R), g.pos(R), cx, phi, H, g.x(R, D), g.x(phi.shape[0]), train)


def relax_categorical_bwd_case(g, train=True, ctx=True):
    a, u, v = g.x(R, D), g.u(R, D), g.u(R, D)
    b = g.out(R, D)
    cpu_relax.relax_categorical_sample(a, u, K, b)
    c = C if ctx else 0
    cx = g.x(R, C) if ctx else np.empty((0, 0))
    phi = 0.5 * g.x(cpu_relax.relax_size(D, c, H))
    return (a, u, v, b, g.x(R), g.pos(R), cx, phi, H, K, g.x(R, D), g.x(phi.shape[0]), train)


# a node's place in the REBAR nodes' shared row digit: (off, span) with span - 1 >= configs - 1;
# alone it is (1, configs); SHARED puts its rows c >= 1 after another trained node's four
SHARED = {TRAINED: (5, 9), FIXED: (5, 7)}


def slot(configs, shared):
    return SHARED[configs] if shared else (1, configs)


def rebar_forward_case(g, configs, shared=False):
    off, span = slot(configs, shared)
    n = STRIDE * span * 2
    return (g.x(n, D), g.u(n, D), g.u(n, D), STRIDE, off, span, configs, g.h(-0.3), 0.1, g.out(n, D), g.out(n, D))


def rebar_bwd_case(g, train=True, eta=0.7, kept=False, shared=False):
    configs = TRAINED if train else FIXED
    off, span = slot(configs, shared)
    n = STRIDE * span * 2
    rw = g.pos(n)
    rw[STRIDE * span + 1] = 0.0   # a drawn row with weight 0 is skipped
    a, dzt, y = g.x(n, D), g.out(n, D), g.out(n, D)
    cpu_rebar.rebar_forward(a, g.u(n, D), g.u(n, D), STRIDE, off, span, configs, g.h(-0.3), 0.1, y, dzt)   # its reads
    sa = 1 / (1 + np.exp(-a)) if kept else np.empty((0, 0))
    return (a, sa, dzt, y, g.x(n), rw, g.x(n, D), STRIDE, off, span, configs, g.h(eta), g.h(-0.3), 0.1, g.x(n, D),
            g.x(1), g.x(1), train)


def rebar_categorical_forward_case(g, configs, shared=False):
    off, span = slot(configs, shared)
    n = STRIDE * span * 2
    return (g.x(n, D), g.u(n, D), g.u(n, D), STRIDE, off, span, configs, K, g.h(0.2), 0.1, g.out(n, D))


def rebar_categorical_bwd_case(g, train=True, eta=0.7, shared=False):
    configs = TRAINED if train else FIXED
    off, span = slot(configs, shared)
    n = STRIDE * span * 2
    rw = g.pos(n)
    rw[STRIDE * span] = 0.0
    return (g.x(n, D), g.u(n, D), g.u(n, D), g.x(n), rw, g.x(n, D), STRIDE, off, span, configs, K, g.h(eta),
            g.h(0.2), 0.1, g.x(n, D), g.x(1), g.x(1), train)


def relax_paper_bwd_case(g, categorical=False, train=True, eta=0.7, shared=False, ctx=True):
    """The paper form's backward on REBAR's rows (forward first: its values, y, are read)."""
    configs = TRAINED if train else FIXED
    off, span = slot(configs, shared)
    n = STRIDE * span * 2
    rw = g.pos(n)
    rw[STRIDE * span] = 0.0   # a drawn row with weight 0 is skipped
    a, u, v, y, dzt = g.x(n, D), g.u(n, D), g.u(n, D), g.out(n, D), g.out(n, D)
    if categorical:
        cpu_rebar.rebar_categorical_forward(a, u, v, STRIDE, off, span, configs, K, g.h(-0.3), 0.1, y)
    else:
        cpu_rebar.rebar_forward(a, u, v, STRIDE, off, span, configs, g.h(-0.3), 0.1, y, dzt)
    c = C if ctx else 0
    cx = g.x(n, C) if ctx else np.empty((0, 0))
    phi = 0.5 * g.x(cpu_relax.relax_size(D, c, H))
    head = (a, u, v) + (() if categorical else (y,)) + (g.x(n), rw, g.x(n, D), STRIDE, off, span, configs)
    return (*head, *((K,) if categorical else ()), g.h(eta), g.h(-0.3), 0.1, cx, phi, H, g.x(n, D), g.x(1), g.x(1),
            g.x(phi.shape[0]), train)


def flag(g):
    f = np.zeros(R)
    cpu_rebar.cv_flags(1, 1, TRAINED, TRAINED, f)   # rows 1..3 flagged, row 0 not
    return f


def relaxed_categorical_case(g):
    f, a, gum, lam = flag(g), g.x(R, D), g.x(R, D), g.h(0.3)
    out = g.out(R, D)
    cpu_rebar.relax_rows_categorical(f, a, gum, K, lam, out)
    return (f, out, K, lam, g.x(R, D), g.x(R, D))


CASES = {
    # ---- cpu/relax.py
    "relax_sample": lambda g: (g.x(R, D), g.u(R, D), g.out(R, D)),
    "relax_bwd": relax_bwd_case,
    "relax_bwd[no-train]": ("relax_bwd", lambda g: relax_bwd_case(g, train=False)),
    "relax_bwd[no-ctx]": ("relax_bwd", lambda g: relax_bwd_case(g, ctx=False)),
    "copy_cols": lambda g: (g.x(R, 2), g.out(R, D), 3),
    "relax_categorical_sample": lambda g: (g.x(R, D), g.u(R, D), K, g.out(R, D)),
    "relax_categorical_bwd": relax_categorical_bwd_case,
    "relax_categorical_bwd[no-train]": ("relax_categorical_bwd",
                                        lambda g: relax_categorical_bwd_case(g, train=False)),
    "relax_categorical_bwd[no-ctx]": ("relax_categorical_bwd", lambda g: relax_categorical_bwd_case(g, ctx=False)),
    "relax_paper_bwd": relax_paper_bwd_case,
    "relax_paper_bwd[fixed]": ("relax_paper_bwd", lambda g: relax_paper_bwd_case(g, train=False)),
    "relax_paper_bwd[eta=0-shared]": ("relax_paper_bwd", lambda g: relax_paper_bwd_case(g, eta=0.0, shared=True)),
    "relax_paper_bwd[no-ctx]": ("relax_paper_bwd", lambda g: relax_paper_bwd_case(g, ctx=False)),
    "relax_paper_categorical_bwd": ("relax_paper_categorical_bwd", lambda g: relax_paper_bwd_case(g, True)),
    "relax_paper_categorical_bwd[fixed-shared]": ("relax_paper_categorical_bwd",
                                                  lambda g: relax_paper_bwd_case(g, True, train=False, shared=True)),
    # ---- cpu/rebar.py
    "rebar_forward": lambda g: rebar_forward_case(g, TRAINED),
    "rebar_forward[fixed]": ("rebar_forward", lambda g: rebar_forward_case(g, FIXED)),
    "rebar_forward[shared]": ("rebar_forward", lambda g: rebar_forward_case(g, TRAINED, shared=True)),
    "rebar_forward[fixed-shared]": ("rebar_forward", lambda g: rebar_forward_case(g, FIXED, shared=True)),
    "rebar_weights": lambda g: (STRIDE, 1, TRAINED, TRAINED, g.h(0.7), g.pos(RB), g.pos(RB)),
    "rebar_weights[fixed]": ("rebar_weights", lambda g: (STRIDE, 1, FIXED, FIXED, g.h(0.7), g.pos(RF), g.pos(RF))),
    "rebar_weights[fixed-shared]": ("rebar_weights", lambda g: (STRIDE, 5, 7, FIXED, g.h(0.7), g.pos(STRIDE * 14),
                                                                g.pos(STRIDE * 14))),
    "rebar_bwd": rebar_bwd_case,
    "rebar_bwd[no-train]": ("rebar_bwd", lambda g: rebar_bwd_case(g, train=False)),
    "rebar_bwd[eta=0]": ("rebar_bwd", lambda g: rebar_bwd_case(g, eta=0.0)),
    "rebar_bwd[kept-sigmoid]": ("rebar_bwd", lambda g: rebar_bwd_case(g, kept=True)),
    "rebar_bwd[shared]": ("rebar_bwd", lambda g: rebar_bwd_case(g, shared=True)),
    "rebar_bwd[no-train-shared]": ("rebar_bwd", lambda g: rebar_bwd_case(g, train=False, shared=True)),
    "cv_flags": lambda g: (1, 1, TRAINED, TRAINED, np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])),
    "cv_flags[fixed]": ("cv_flags", lambda g: (1, 1, FIXED, FIXED, np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]))),
    "cv_flags[shared]": ("cv_flags", lambda g: (1, 3, 5, FIXED, np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]))),
    "relax_rows_bernoulli": lambda g: (flag(g), g.x(R, D), g.u(R, D), True, g.h(0.3), g.out(R, D)),
    "relax_rows_bernoulli[logistic]": ("relax_rows_bernoulli",
                                       lambda g: (flag(g), g.x(R, D), g.x(R, D), False, g.h(0.3), g.out(R, D))),
    "relax_rows_bernoulli_bwd": lambda g: (flag(g), g.u(R, D), g.h(0.3), g.x(R, D), g.x(R, D)),
    "relax_rows_categorical": lambda g: (flag(g), g.x(R, D), g.x(R, D), K, g.h(0.3), g.out(R, D)),
    "relax_rows_categorical_bwd": relaxed_categorical_case,
    "relax_rows_normal_bwd": lambda g: (flag(g), g.x(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "relax_rows_normal_bwd[skip]": ("relax_rows_normal_bwd",
                                    lambda g: (flag(g), g.x(R, D), g.x(R, D), g.skip(2), g.x(R, D))),
    "copy1": lambda g: (g.x(R), g.out(R)),
    "rebar_categorical_forward": lambda g: rebar_categorical_forward_case(g, TRAINED),
    "rebar_categorical_forward[fixed]": ("rebar_categorical_forward",
                                         lambda g: rebar_categorical_forward_case(g, FIXED)),
    "rebar_categorical_forward[shared]": ("rebar_categorical_forward",
                                          lambda g: rebar_categorical_forward_case(g, TRAINED, shared=True)),
    "rebar_categorical_bwd": rebar_categorical_bwd_case,
    "rebar_categorical_bwd[no-train]": ("rebar_categorical_bwd",
                                        lambda g: rebar_categorical_bwd_case(g, train=False)),
    "rebar_categorical_bwd[shared]": ("rebar_categorical_bwd",
                                      lambda g: rebar_categorical_bwd_case(g, shared=True)),
}
MODULE_OF = {n: (c, gm) for c, gm in PAIRS for n in public_kernels(c)}


def _spec(case):
    spec = CASES[case]
    return (case, spec) if callable(spec) else spec


def check(name, builder, seed=0):
    cmod, gmod = MODULE_OF[name]
    built = builder(Gen(seed))
    c_args = [a.copy() if isinstance(a, np.ndarray) else a for a in built]
    g_args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in built]
    c_ret = getattr(cmod, name)(*c_args)
    g_ret = getattr(gmod, name)(*g_args)
    for i, (c, gd) in enumerate(zip(c_args, g_args)):
        if isinstance(c, np.ndarray):
            assert_allclose(gd.copy_to_host(), c, rtol=1e-9, atol=1e-12, err_msg=f"{name}: argument {i}")
    if c_ret is None:
        assert g_ret is None, name
    else:
        assert_allclose(g_ret, c_ret, rtol=1e-9, err_msg=f"{name}: returned value")


# ------------------------------------------------------------------------------ tests
def test_every_public_estimator_kernel_has_a_twin_and_a_case():
    covered = {_spec(c)[0] for c in CASES}
    for cmod, gmod in PAIRS:
        for name in public_kernels(cmod):
            assert name in covered, f"{cmod.__name__}.{name} has no parity case"
            twin = getattr(gmod, name, None)
            assert callable(twin), f"{gmod.__name__} lacks {name}"
            c_params = list(inspect.signature(getattr(cmod, name).py_func).parameters)
            g_params = list(inspect.signature(twin).parameters)
            assert g_params == c_params, f"{name}: {g_params} != {c_params}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_float64(case):
    name, build = _spec(case)
    check(name, build)


def test_rebar_bwd_is_deterministic():
    args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in rebar_bwd_case(Gen(3))]
    outs = []
    for _ in range(2):
        geta, glam = cuda.to_device(np.zeros(1)), cuda.to_device(np.zeros(1))
        gpu_rebar.rebar_bwd(*args[:14], cuda.to_device(np.zeros((RB, D))), geta, glam, True)
        outs.append((geta.copy_to_host()[0], glam.copy_to_host()[0]))
    assert outs[0] == outs[1]


def test_limits_are_clear_errors():
    big = gpu_relax.MAX_UNITS + 1
    z = cuda.to_device(np.zeros((1, big)))
    with pytest.raises(ValueError, match="MAX_UNITS"):
        gpu_relax.relax_bwd(z, z, z, z, np.zeros(1), np.ones(1), np.empty((0, 0)), np.zeros(3), 1,
                            z, np.zeros(3), True)
    z = cuda.to_device(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="MAX_HIDDEN"):
        gpu_relax.relax_bwd(z, z, z, z, np.zeros(1), np.ones(1), np.empty((0, 0)), np.zeros(3),
                            gpu_relax.MAX_HIDDEN + 1, z, np.zeros(3), True)
    z = cuda.to_device(np.zeros((RF, D)))
    odd = FIXED + 1   # neither layout: 3 rows (temperature fixed) or 5 (trained)
    for kernels in (gpu_rebar, cpu_rebar):
        with pytest.raises(ValueError, match="CONFIGS"):
            kernels.rebar_bwd(z, np.empty((0, 0)), z, z, np.zeros(RF), np.ones(RF), z, STRIDE, 1, odd, odd, np.ones(1),
                              np.zeros(1), 0.1, z, np.zeros(1), np.zeros(1), True)
        with pytest.raises(ValueError, match="CONFIGS"):
            kernels.rebar_categorical_bwd(z, z, z, np.zeros(RF), np.ones(RF), z, STRIDE, 1, odd, odd, K, np.ones(1),
                                          np.zeros(1), 0.1, z, np.zeros(1), np.zeros(1), True)
        z = np.zeros((RF, D))
    k = gpu_rebar.MAX_K + 1
    z = cuda.to_device(np.zeros((5, k)))
    with pytest.raises(ValueError, match="MAX_K"):
        gpu_rebar.rebar_categorical_forward(z, z, z, 1, 1, TRAINED, TRAINED, k, np.zeros(1), 0.1, z)
