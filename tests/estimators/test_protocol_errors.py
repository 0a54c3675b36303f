"""A user's estimator and check_grad held to their contracts: each mistake is a ModelError
naming the estimator (or function), the node and the fix, not Numba's or NumPy's raw error."""
import numpy as np
import pytest
from numba import njit

import ppl
from ppl import Affine, Bernoulli, Model, ModelError
from ppl.estimators import REGISTRY
from ppl.language import dist


@njit
def two_args(a, b):
    pass


@njit
def nan_draw(v):
    for r in range(v.shape[0]):
        for j in range(v.shape[1]):
            v[r, j] = np.nan


def model(name):
    with Model(name) as m:
        x = m.input("x", 4)
        h = Bernoulli("h", logits=Affine(x, 3, name="enc"))
        m.latent(h, dist.Bernoulli(logits=ppl.param("prior", 3)))
        m.observe("recon", dist.Bernoulli(logits=Affine(h, 4, name="dec")), x)
    return m


@pytest.fixture(autouse=True)
def _unregistered():
    """The broken estimators a test registers leave the registry with it (a check() that raises
    would break every later choice of estimators in this process)."""
    before = set(REGISTRY)
    yield
    for name in set(REGISTRY) - before:
        del REGISTRY[name]


def estimator(name, **methods):
    methods.setdefault("estimate", lambda self, ctx: None)
    return ppl.register_estimator(type(name, (ppl.Estimator,), {"name": name, **methods}))


def compile_with(name, **methods):
    estimator(name, **methods)
    return model(f"m_{name}").compile(estimators={"h": name})


X = (np.random.default_rng(0).random((5, 4)) > 0.5).astype(float)


def test_kernel_of_the_wrong_arity():
    def estimate(self, ctx):
        (logits,), (g,) = ctx.params(), ctx.param_grads()
        ctx.call(two_args, logits, g, 3)
    with pytest.raises(ModelError, match=r"estimator 'pe_arity' of node 'h': kernel 'two_args\(a, b\)' called with 3 "
                                         r"argument\(s\).*too many positional arguments"):
        compile_with("pe_arity", estimate=estimate)


def test_parameter_init_of_the_wrong_shape():
    def estimate(self, ctx):
        ctx.parameter("w", (3,), init=np.zeros(5))
    with pytest.raises(ModelError, match=r"parameter 'pe_shape.h.w' has shape \(3,\) but its init has shape \(5,\)"):
        compile_with("pe_shape", estimate=estimate)


def test_check_that_raises_or_returns_a_non_string():
    def boom(self, info):
        raise ValueError("boom")
    with pytest.raises(ModelError, match=r"estimator 'pe_check': its check\(info\) raised ValueError: boom \(node 'h'\)"):
        compile_with("pe_check", check=boom)
    with pytest.raises(ModelError, match=r"check\(info\) returned 3 for node 'h'; return None"):
        compile_with("pe_check3", check=lambda self, info: 3)


def test_rows_over_the_limit_names_the_estimator():
    with pytest.raises(ModelError, match=r"1000000000 rows per draw .*'h' \(estimator 'pe_rows'\) x1000000000.*rows\(\)"):
        compile_with("pe_rows", rows=lambda self, info, opts: 10 ** 9)


def test_a_draw_of_nan_is_refused_in_the_step():
    def draw(self, ctx):
        ctx.call(nan_draw, ctx.value())
    prog = compile_with("pe_nan", draw=draw)
    with pytest.raises(ModelError, match="estimator 'pe_nan' drew NaN or inf values for node 'h'"):
        prog.grad(X)


def test_check_grad_with_the_wrong_signature():
    @njit
    def f(a, out):
        out[0] = 2.0 * a[0]

    @njit
    def vjp(a, b, out, gout, ga):
        ga[0] = 2.0 * gout[0]
    with pytest.raises(ModelError, match=r"check_grad: layer: vjp\(a, b, out, gout, ga\) cannot take the 4 "
                                         r"argument\(s\) \(row_1, out, gout, g_1\) of 1 input\(s\)"):
        ppl.check_grad(f, rows=[np.ones(1)], grad=vjp, width=1)

    @njit
    def box(a, b):
        return a[0]
    with pytest.raises(ModelError, match=r"fn\(a, b\) cannot take the 1 argument\(s\) \(row_1\)"):
        ppl.check_grad(box, rows=[np.ones(1)], grad=vjp)
