"""The ARM / DisARM pair kernels (kernels/families/antithetic.py) against NumPy oracles of their
formulas: the antithetic draw, the ARM and DisARM pair gradients (accumulated into both rows of a
pair), their marginalised versions over an enumerated digit below the pair, and the row weights'
scaling; float64 and float32."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from ppl.kernels.cpu import core as cpu
from ppl.kernels.families import antithetic as A

R, D = 8, 5


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def pair_rule(logits, u, stride, off, span):
    """NumPy's antithetic draw: 1[u > sigma(-a)] on the rows at local index `off` of the row digit
    (stride, span), 1[u < sigma(a)] on every other row; sigma in float64, the result in the logits' dtype."""
    lo = logits.astype(np.float64)
    local = ((np.arange(len(lo)) // stride) % span)[:, None]
    return np.where(local == off, u > sig(-lo), u < sig(lo)).astype(logits.dtype)


def tol(dt):
    return dict(rtol=1e-12, atol=1e-14) if dt == np.float64 else dict(rtol=2e-6, atol=1e-6)


def draw(rng, dt, stride=1):
    logits = rng.normal(size=(R, D)).astype(dt)
    u = rng.uniform(0.02, 0.98, size=(R, D)).astype(dt)
    # a pair's rows share their logits and uniforms (the step repeats the drawn row)
    for r in range(R):
        if (r // stride) % 2:
            logits[r], u[r] = logits[r - stride], u[r - stride]
    b = np.full((R, D), 7.0, dt)
    A.antithetic_bernoulli(logits, u, stride, 1, 2, b)
    return logits, u, b


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("stride", [1, 2])
def test_antithetic_bernoulli_is_the_pair_rule(dt, stride):
    rng = np.random.default_rng(0)
    logits, u, b = draw(rng, dt, stride)
    assert_array_equal(b, pair_rule(logits, u, stride, 1, 2))


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_arm_grad_adds_the_pair_estimate_to_both_rows(dt):
    rng = np.random.default_rng(1)
    _, u, _ = draw(rng, dt)
    L, rw = rng.normal(size=R).astype(dt), rng.uniform(0.5, 2, size=R).astype(dt)
    ga = rng.normal(size=(R, D)).astype(dt)
    want = ga.astype(np.float64).copy()
    for r in range(0, R, 2):
        c = (L[r + 1] - L[r]) * (u[r].astype(np.float64) - 0.5)
        want[r] += rw[r] * c
        want[r + 1] += rw[r + 1] * c
    A.arm_grad(u, L, rw, 1, 1, 2, ga)
    assert_allclose(ga, want, **tol(dt))


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_disarm_grad_is_zero_where_the_pair_agrees(dt):
    rng = np.random.default_rng(2)
    logits, _, b = draw(rng, dt)
    L, rw = rng.normal(size=R).astype(dt), rng.uniform(0.5, 2, size=R).astype(dt)
    ga = rng.normal(size=(R, D)).astype(dt)
    want = ga.astype(np.float64).copy()
    for r in range(0, R, 2):
        a = logits[r].astype(np.float64)
        c = 0.5 * (L[r + 1] - L[r]) * sig(np.abs(a)) * np.where(b[r] > 0.5, -1.0, 1.0)
        c = np.where(b[r] != b[r + 1], c, 0.0)
        want[r] += rw[r] * c
        want[r + 1] += rw[r + 1] * c
    A.disarm_grad(logits, b, L, rw, 1, 1, 2, ga)
    assert_allclose(ga, want, **tol(dt))
    assert (b[0::2] != b[1::2]).any() and (b[0::2] == b[1::2]).any()


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_marginal_gradients_compare_the_members_marginal_signals(name):
    """Pair digit at stride 1, an enumerated digit (size 2) at stride 2: the members' signals are
    sum rw L / sum rw over that digit, and every row of both members gets its weight times the
    estimate. With one configuration (size 1) the kernel is the plain one."""
    rng = np.random.default_rng(3)
    logits, u, b = draw(rng, np.float64)
    logits[2::4], u[2::4], b[2::4] = logits[0::4], u[0::4], b[0::4]   # the digit's rows: one draw
    logits[3::4], u[3::4], b[3::4] = logits[1::4], u[1::4], b[1::4]
    L, rw = rng.normal(size=R), rng.uniform(0.5, 2, size=R)
    ga = np.zeros((R, D))
    want = np.zeros((R, D))
    for r in range(0, R, 4):   # group heads: rows r (member 0) and r + 1 (member 1)
        f0 = (rw[[r, r + 2]] @ L[[r, r + 2]]) / rw[[r, r + 2]].sum()
        f1 = (rw[[r + 1, r + 3]] @ L[[r + 1, r + 3]]) / rw[[r + 1, r + 3]].sum()
        if name == "arm":
            c = (f1 - f0) * (u[r] - 0.5)
        else:
            c = np.where(b[r] != b[r + 1], 0.5 * (f1 - f0) * sig(np.abs(logits[r])) * np.where(b[r] > 0.5, -1, 1), 0)
        for q in (r, r + 1, r + 2, r + 3):
            want[q] += rw[q] * c
    if name == "arm":
        A.arm_grad_marginal(u, L, rw, 1, 1, 2, (2,), (2,), ga)
    else:
        A.disarm_grad_marginal(logits, b, L, rw, 1, 1, 2, (2,), (2,), ga)
    assert_allclose(ga, want, rtol=1e-12, atol=1e-14)
    plain, marg = np.zeros((R, D)), np.zeros((R, D))
    if name == "arm":
        A.arm_grad(u, L, rw, 1, 1, 2, plain)
        A.arm_grad_marginal(u, L, rw, 1, 1, 2, (2,), (1,), marg)
    else:
        A.disarm_grad(logits, b, L, rw, 1, 1, 2, plain)
        A.disarm_grad_marginal(logits, b, L, rw, 1, 1, 2, (2,), (1,), marg)
    assert_allclose(marg, plain, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_a_shared_digit_draws_the_partner_at_its_offset_and_plain_elsewhere(dt):
    """Digit (stride 1, span 3): the drawn row (local 0) and another node's row (local 1) hold the
    plain draw b, the node's row at off = 2 its partner b~; the gradient's pair is (0, 2)."""
    rng = np.random.default_rng(4)
    n = 9
    logits = np.repeat(rng.normal(size=(n // 3, D)), 3, axis=0).astype(dt)
    u = np.repeat(rng.uniform(0.02, 0.98, size=(n // 3, D)), 3, axis=0).astype(dt)
    b = np.full((n, D), 7.0, dt)
    A.antithetic_bernoulli(logits, u, 1, 2, 3, b)
    assert_array_equal(b, pair_rule(logits, u, 1, 2, 3))
    lo = logits.astype(np.float64)
    L, rw = rng.normal(size=n).astype(dt), np.where(np.arange(n) % 3 == 0, 1.5, 0.0).astype(dt)
    ga = np.zeros((n, D), dt)
    A.disarm_grad(logits, b, L, rw, 1, 2, 3, ga)
    want = np.zeros((n, D))
    for r in range(0, n, 3):
        c = 0.5 * (L[r + 2] - L[r]) * sig(np.abs(lo[r])) * np.where(b[r] > 0.5, -1.0, 1.0)
        want[r] = rw[r] * np.where(b[r] != b[r + 2], c, 0.0)
    assert_allclose(ga, want, **tol(dt))


def test_scale_rows_and_the_step_finds_the_family():
    rw = np.arange(1.0, 5.0)
    A.scale_rows(rw, 0.5)
    assert_array_equal(rw, [0.5, 1.0, 1.5, 2.0])
    for name in A.PARITY:   # the step's `antithetic` alias binds cpu/core.py, which re-exports the family
        assert getattr(cpu, name) is getattr(A, name)


def test_a_digits_layout_compiles_once_for_every_constant_and_draws_as_numpy():
    """A step passes a row digit's stride, pair offset and span as constants; the kernels take
    them as int64 (kernels/_link.PLAIN_PARAMS): one specialisation serves every layout (strides
    1, 2 and 3, offsets 1 and 2, spans 2, 3 and 4: slot_local's paths with and without a
    division at run time), each drawing the partner at its offset as the NumPy rule does
    (`pair_rule`)."""
    from numba import njit, types

    layouts = ((1, 1, 2), (1, 1, 3), (1, 2, 4), (2, 1, 2), (3, 1, 2))

    @njit
    def caller(logits, u, b0, b1, b2, b3, b4):
        A.antithetic_bernoulli(logits, u, 1, 1, 2, b0)
        A.antithetic_bernoulli(logits, u, 1, 1, 3, b1)
        A.antithetic_bernoulli(logits, u, 1, 2, 4, b2)
        A.antithetic_bernoulli(logits, u, 2, 1, 2, b3)
        A.antithetic_bernoulli(logits, u, 3, 1, 2, b4)

    rng = np.random.default_rng(5)
    n = 12
    logits, u = rng.normal(size=(n, D)).astype(np.float32), rng.uniform(0.02, 0.98, size=(n, D)).astype(np.float32)
    outs = [np.full((n, D), 7.0, np.float32) for _ in layouts]
    caller(logits, u, *outs)
    for (stride, off, span), b in zip(layouts, outs):
        assert_array_equal(b, pair_rule(logits, u, stride, off, span), err_msg=f"stride {stride}, off {off}, span {span}")
    arrays = (types.float32[:, ::1],) * 2   # other tests' callers pass other dtypes and layouts
    sigs = [sig_ for sig_ in A.antithetic_bernoulli.signatures if tuple(sig_[:2]) == arrays and sig_[5] == arrays[0]]
    assert len(sigs) == 1 and tuple(sigs[0][2:5]) == (types.int64,) * 3, sigs
