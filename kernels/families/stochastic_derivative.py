"""Stochastic derivatives with pruning (Arya, Schauer, Schaefer & Rackauckas 2022, "Automatic
differentiation of programs with discrete randomness", NeurIPS): the kernels of
estimators/stochastic_derivative.py.

A discrete draw x(theta) by inverse CDF from one uniform jumps, as theta grows, to an alternative
value y with a probability proportional to d theta: its derivative is E[w (f(y) - f(x))], w the
jump's weight per unit of theta. Per unit of a node, in its law's parameter:
  Bernoulli (logits a), p = sigmoid(a):  x = 0 -> y = 1, w = p               (x = 1: no jump)
  Categorical (logits a, a group):       x = c -> y = k for each class k != c, w_k = p_k
  Poisson (rate):                        x -> x + 1, w = 1
  Bernoulli (probs p):                   x = 0 -> y = 1, w = 1 / (1 - p)
  Categorical (probs: weights w, sum S): x = c -> y = k for each class k != c, w_k = 1 / S
  Binomial (total_count n, probs p):     x -> x + 1 (x < n), w = (n - x) / (1 - p); logits: (n - x) p
  Geometric (probs p, failures):         x -> x - 1 (x > 0), w = x / (p (1 - p)); logits: x
Pruning keeps ONE alternative per drawn row among every jump of every node drawn so far: a
weighted reservoir (the jump of weight |w| replaces the kept one with probability |w| / W, W the
running sum of the weights), so the kept jump is j with probability |w_j| / W_total, and
W_total sign(w_j) (f(y_j) - f(x)) estimates the derivative along j's parameter without bias.

Noise: the draw's noise u (the unit's value, on every row) and the reservoir's uniforms v (drawn
rows only), v's last `width` columns: the laws drawn from one uniform take both from ONE buffer of
2 width columns (u the first half), one philox block giving a scalar unit's two uniforms.

Rows: the drawn row (local index 0 of the digit (stride, span)) holds the draw x; the
alternative row (local index `off`) holds the path that took the kept jump: when a node's jump
is kept, the alternative row takes the drawn row's values with that jump applied (the
lowering copies the drawn row's values read later onto it, `alt_reset`), else it draws the node
plainly from its own inputs with the drawn row's uniform (common random numbers). Every other row
of the digit draws plainly. Per drawn row, 1D buffers: W the weights' running sum, `sid` the
count of kept jumps (the kept one's tag), D the alternative's cost minus the draw's, summed as the
costs are computed (`alt_cost_diff`) and restarted at each kept jump; `tag[r, j]` holds the count
at which unit j's jump was kept (the estimate: its unit's tag equals the final count). The
alternative row weighs 0 in the objective.
"""
import math
import textwrap

import numpy as np
from numba import njit

from ..declare import rows
from ..math.groups import categorical_sample_group, logsumexp_group
from ..math.scalar import like, sigmoid
from ..math.slots import slot_local
from ..math.words import add_word
from .binomial import _pq, _sample as _binomial_sample
from .geometric import _sample as _geometric_sample
from .poisson import _inverse_cdf
from .probs import _group_sum, _icdf_group


@njit(cache=True, error_model="numpy", inline="always")
def _keep(r, j, m, v, W, sid, tag):
    """A jump of weight m > 0 of unit j into the reservoir: True when it replaces the kept one."""
    W[r] += m
    if v[r, j] * W[r] < m:
        sid[r] += 1.0
        tag[r, j] = sid[r]
        return True
    return False


@njit(cache=True, error_model="numpy", inline="always")
def _keep_t(r, j, w, v, W, sid, tag, tan, S):
    """A jump of unit j, weight w > 0 per unit of its law's parameter, into the reservoir: per
    unit (`tan` empty: weight w), or along the model's parameters (`tan`: the parameter's
    tangents, column d * width + j for direction d): weight m = w sum_d |tan_d|, and where it is
    kept S[r, d] = w tan_d / m, so that W_total S (f(y) - f(x)) estimates every direction's
    derivative. A jump with no tangent adds nothing; a NaN weight makes W NaN."""
    if tan.shape[0] == 0:
        return _keep(r, j, w, v, W, sid, tag)
    n = tag.shape[1]
    m = 0.0
    for d in range(S.shape[1]):
        m += abs(float(tan[r, d * n + j]))
    m *= w
    if m == 0.0 or not _keep(r, j, m, v, W, sid, tag):
        return False
    for d in range(S.shape[1]):
        S[r, d] = w * float(tan[r, d * n + j]) / m
    return True


@njit(cache=True, error_model="numpy")
def _apply(r, ra, kept, jump, D, switched, value, rw):
    """The alternative row after the drawn row's jumps: the draw with the kept jump (to `jump`)
    where this node kept one (and D restarts), else left to the caller's plain draw (False)."""
    switched[r] = 1.0 if kept >= 0 else 0.0
    rw[ra] = 0.0
    if kept < 0:
        return False
    D[r] = 0.0
    for j in range(value.shape[1]):
        value[ra, j] = value[r, j]
    value[ra, kept] = jump
    return True


@njit(cache=True, error_model="numpy")
def _move_group(value, ra, kept, K):
    """The alternative row's one-hot group of the kept class moved to it (the rest of the row is
    the draw's, copied by _apply)."""
    g0 = (kept // K) * K
    for k in range(K):
        value[ra, g0 + k] = like(value, 1.0) if g0 + k == kept else like(value, 0.0)


# ---- the laws of one unit per column, their kernels made from one template (below): a row's
# work is pasted into the kernel's loop (kernels/declare.py) and calls only scalar helpers, so no
# array is reference-counted per row
@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_unit(logits, u):
    return 1.0 if u < sigmoid(logits) else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_jump(logits, x):
    return (float(sigmoid(logits)), 1.0) if x == 0.0 else (0.0, 0.0)


@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_probs_unit(probs, u):
    return 1.0 if u < probs else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _bernoulli_probs_jump(probs, x):
    return (1.0 / (1.0 - float(probs)), 1.0) if x == 0.0 else (0.0, 0.0)


@njit(cache=True, error_model="numpy", inline="always")
def _poisson_jump(rate, x):
    return 1.0, 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _binomial_unit(n, param, u, logits):
    return _binomial_sample(n, param, u, logits)


@njit(cache=True, error_model="numpy", inline="always")
def _binomial_jump(n, param, x, logits):
    p, q, lp, lq = _pq(param, logits)
    if x < float(n) and q > 0.0:
        return (float(n) - x) * (p if logits else 1.0 / q), 1.0
    return 0.0, 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _geometric_jump(param, x, logits):
    p, q, lp, lq = _pq(param, logits)
    return (x if logits else x / (p * q), -1.0) if x > 0.0 else (0.0, 0.0)


_TEMPLATE = """def sd_{kind}_draw(r, {params}, u, v, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S):
    jl = slot_local(r, stride, span)
    if value.shape[1] == 1 and (tan.shape[0] == 0 or S.shape[1] == 1):   # one unit, one direction
{narrow}
    else:
{wide}
"""
# the body of _TEMPLATE: {N} the units (value's columns), {ND} the directions (S's columns); the
# one-unit copy has them constant, so its loops leave no vector-loop set-up in each row's work
_BODY = """if jl != off:
    for j in range({N}):
        value[r, j] = like(value, {unit_r})
    if jl == 0:
        ra = r + off * stride
        kept, jump, n_ = -1, 0.0, {N}
        vo = v.shape[1] - n_   # the reservoir's uniforms: v's last n_ columns (v may be u's twin)
        for j in range(n_):
            tag[r, j] = 0.0
            w, dy = {jump_r}
            if not w <= 0.0:   # a jump (a NaN weight too: it makes W NaN)
                m = w
                if tan.shape[0] != 0:   # along the parameters: w sum_d |tan_d|
                    m = 0.0
                    for d in range({ND}):
                        m += abs(float(tan[r, d * n_ + j]))
                    m *= w
                if m != 0.0:
                    W[r] += m
                    if v[r, vo + j] * W[r] < m:
                        sid[r] += 1.0
                        tag[r, j] = sid[r]
                        kept, jump = j, dy
                        for d in range({ND} if tan.shape[0] != 0 else 0):
                            S[r, d] = w * float(tan[r, d * n_ + j]) / m
        switched[r] = 1.0 if kept >= 0 else 0.0
        rw[ra] = 0.0
        if kept >= 0:
            D[r] = 0.0
            for j in range(n_):
                value[ra, j] = value[r, j]
            value[ra, kept] = value[r, kept] + like(value, jump)
        else:
            for j in range(n_):
                value[ra, j] = like(value, {unit_ra})"""
# kind: (its parameters, the unit's draw, its jump: (weight per unit of the law's parameter, step))
_LAWS = {
    "bernoulli": ("logits", "_bernoulli_unit(logits[{i}, j], u[{i}, j])", "_bernoulli_jump(logits[r, j], float(value[r, j]))",
                  "0 -> 1, weight p per logit"),
    "bernoulli_probs": ("probs", "_bernoulli_probs_unit(probs[{i}, j], u[{i}, j])",
                        "_bernoulli_probs_jump(probs[r, j], float(value[r, j]))", "0 -> 1, weight 1 / (1 - p)"),
    "poisson": ("rate", "_inverse_cdf(rate[{i}, j], u[{i}, j])", "_poisson_jump(rate[r, j], float(value[r, j]))",
                "x -> x + 1, weight 1"),
    "binomial": ("total_count, probs", "_binomial_unit(total_count[{i}, j], probs[{i}, j], u[{i}, j], False)",
                 "_binomial_jump(total_count[r, j], probs[r, j], float(value[r, j]), False)",
                 "x -> x + 1 (x < n), weight (n - x) / (1 - p)"),
    "binomial_logits": ("total_count, logits", "_binomial_unit(total_count[{i}, j], logits[{i}, j], u[{i}, j], True)",
                        "_binomial_jump(total_count[r, j], logits[r, j], float(value[r, j]), True)",
                        "x -> x + 1 (x < n), weight (n - x) p per logit"),
    "geometric": ("probs", "_geometric_sample(probs[{i}, j], u[{i}, j], False)",
                  "_geometric_jump(probs[r, j], float(value[r, j]), False)", "x -> x - 1 (x > 0), weight x / (p (1 - p))"),
    "geometric_logits": ("logits", "_geometric_sample(logits[{i}, j], u[{i}, j], True)",
                         "_geometric_jump(logits[r, j], float(value[r, j]), True)", "x -> x - 1 (x > 0), weight x per logit"),
}


def _scalar_law_kernels():
    """The declared kernels of the laws of one unit per column, from _TEMPLATE (as declare.unary
    makes an op's): the draw on the drawn row with its jumps in the reservoir (per unit, `tan`
    empty, or along the parameters) and the alternative row; every other row a plain draw."""
    import sys
    frame = sys._getframe(0)
    out = {}
    for kind, (params, unit, jump, doc) in _LAWS.items():
        body = {N: textwrap.indent(_BODY.format(N=N, ND=ND, unit_r=unit.format(i="r"), unit_ra=unit.format(i="ra"),
                                                jump_r=jump), " " * 8)
                for N, ND in (("1", "1"), ("value.shape[1]", "S.shape[1]"))}
        src = _TEMPLATE.format(kind=kind, params=params, narrow=body["1"], wide=body["value.shape[1]"])
        glb = dict(globals())
        exec(compile("\n" * (frame.f_code.co_firstlineno - 1) + src, frame.f_code.co_filename, "exec"), glb)
        fn = glb[f"sd_{kind}_draw"]
        fn.__source__ = src
        fn.__doc__ = f"{kind}: {doc} (the module's docstring)."
        out[f"sd_{kind}_draw"] = rows("value")(fn)
    return out


globals().update(_scalar_law_kernels())


@njit(cache=True, error_model="numpy")
def _categorical(r, logits, gumbel, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S):
    jl = slot_local(r, stride, span)
    if jl == off:
        return
    for c0 in range(0, value.shape[1], K):
        categorical_sample_group(logits, gumbel, r, c0, K, value)
    if jl != 0:
        return
    ra = r + off * stride
    kept = -1
    for c0 in range(0, value.shape[1], K):
        m0, lse = logsumexp_group(logits, r, c0, K)
        for k in range(K):
            tag[r, c0 + k] = 0.0
            if value[r, c0 + k] < 0.5 and _keep_t(r, c0 + k, math.exp(logits[r, c0 + k] - m0 - lse), v, W, sid, tag, tan, S):
                kept = c0 + k
    if _apply(r, ra, kept, like(value, 1.0), D, switched, value, rw):
        _move_group(value, ra, kept, K)
    else:
        for c0 in range(0, value.shape[1], K):
            categorical_sample_group(logits, gumbel, ra, c0, K, value)


@rows("value")
def sd_categorical_draw(r, logits, gumbel, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S):
    """Groups of K classes (Gumbel-max draws): a group drawn c jumps to each other class k with
    weight p_k (per unit, or along the parameters: _keep_t)."""
    _categorical(r, logits, gumbel, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S)


@njit(cache=True, error_model="numpy")
def _categorical_probs(r, probs, u, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S):
    jl = slot_local(r, stride, span)
    if jl == off:
        return
    for c0 in range(0, value.shape[1], K):
        _icdf_group(probs, u[r, c0], r, c0, K, value)
    if jl != 0:
        return
    ra = r + off * stride
    kept = -1
    for c0 in range(0, value.shape[1], K):
        m = 1.0 / float(_group_sum(probs, r, c0, K))
        for k in range(K):
            tag[r, c0 + k] = 0.0
            if value[r, c0 + k] < 0.5 and _keep_t(r, c0 + k, m, v, W, sid, tag, tan, S):
                kept = c0 + k
    if _apply(r, ra, kept, like(value, 1.0), D, switched, value, rw):
        _move_group(value, ra, kept, K)
    else:
        for c0 in range(0, value.shape[1], K):
            _icdf_group(probs, u[ra, c0], ra, c0, K, value)


@rows("value")
def sd_categorical_probs_draw(r, probs, u, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S):
    """sd_categorical_draw for weights: inverse-CDF draws; a group drawn c jumps to each other
    class k with weight 1 / S (S the group's sum)."""
    _categorical_probs(r, probs, u, v, K, stride, off, span, W, sid, D, switched, tag, value, rw, tan, S)


@rows("t")
def tangent_seed(r, t, col):
    """A parameter's tangent along its entry `col`: t[r, j] = 1 where j == col, else 0."""
    for j in range(t.shape[1]):
        t[r, j] = like(t, 1.0) if j == col else like(t, 0.0)


@rows("flag")
def alt_differs(r, x, flag, stride, off, span):
    """flag[r] = 1 on a drawn row whose alternative row's values of x differ from its own (NaN
    differs): a carry at the end of a step."""
    if slot_local(r, stride, span) == 0:
        ra = r + off * stride
        for j in range(x.shape[1]):
            if not x[ra, j] == x[r, j]:
                flag[r] = 1.0


@rows("flag")
def sd_bank(r, flag, stride, span, W, D, S, acc):
    """Where the alternative path has met the drawn one again (flag 0 after every carry's
    alt_differs), its contribution W D S is final: banked into acc, and the reservoir restarts
    empty (W = D = 0), so a later jump is weighed against the jumps after the meeting only."""
    if slot_local(r, stride, span) == 0 and flag[r] == 0.0 and W[r] != 0.0:
        c = W[r] * D[r]
        for d in range(S.shape[1]):
            acc[r, d] += c * S[r, d]
            S[r, d] = 0.0
        W[r] = 0.0
        D[r] = 0.0


@rows("W")
def sd_tangent_grad(r, W, D, S, acc, rw, stride, span, d, e, gp):
    """gp[e] += the drawn rows' rw (acc + W D S) in direction d: the stochastic derivative along
    the parameter entry e (a word every row adds to)."""
    if slot_local(r, stride, span) == 0:
        add_word(gp, e, rw[r] * (acc[r, d] + W[r] * D[r] * S[r, d]))


@rows("tag")
def sd_grad(r, tag, stride, span, W, sid, D, rw, grad):
    """grad[r, j] += rw W D on the drawn row of the unit whose jump was kept last (its tag is the
    final count): W_total sign(w) (f(y) - f(x)), every jump's weight positive in its parameter."""
    if slot_local(r, stride, span) == 0 and sid[r] > 0.0:
        s = like(grad, rw[r] * W[r] * D[r])
        for j in range(tag.shape[1]):
            if tag[r, j] == sid[r]:
                grad[r, j] += s


@rows("c")
def alt_cost_diff(r, c, stride, off, span, D):
    """D[r] += c[alternative row] - c[r] on the drawn rows: a cost's share of f(y) - f(x)."""
    if slot_local(r, stride, span) == 0:
        D[r] += c[r + off * stride] - c[r]


@rows("switched")
def alt_reset(r, x, switched, stride, off, span):
    """The alternative row takes the drawn row's values of x where the node just drawn kept a
    jump (a value computed before it and read after it)."""
    if slot_local(r, stride, span) == 0 and switched[r] > 0.0:
        for j in range(x.shape[1]):
            x[r + off * stride, j] = x[r, j]


@rows("switched")
def alt_reset_steps(r, x, steps, switched, stride, off, span):
    """alt_reset for the first `steps` steps of a loop's per-step storage x (the steps' rows one
    after the other, R = switched.shape[0] each): a loop's outputs, read after the loop."""
    if slot_local(r, stride, span) == 0 and switched[r] > 0.0:
        R = switched.shape[0]
        for s in range(steps):
            for j in range(x.shape[1]):
                x[s * R + r + off * stride, j] = x[s * R + r, j]


def _state(g, n, d):
    """The digit (stride 1, alternative at local index 2 of 3) and the buffers a draw writes."""
    return (1, 2, 3, g.x(n) * 0, g.x(n) * 0, g.x(n) * 0, g.out(n), g.out(n, d), g.out(n, d), g.pos(n))


def _tangents(g, width, dirs=2):
    """A parameter's tangents along `dirs` directions (column d * width + j) and S, the kept jump's
    (dirs 0: per unit, the empty tangents the step passes then)."""
    return (g.x(R, dirs * width), g.out(R, dirs)) if dirs else (g.x(R, 0)[:0], g.x(R, 0)[:0])


R, D = 9, 3
PARITY = {
    "sd_bernoulli_draw": lambda g: (g.x(R, D), g.u(R, D), g.u(R, D), *_state(g, R, D), *_tangents(g, D)),
    "sd_categorical_draw": lambda g: (g.x(R, 6), g.x(R, 6), g.u(R, 6), 3, *_state(g, R, 6), *_tangents(g, 6)),
    "sd_poisson_draw": lambda g: (3 * g.pos(R, D), g.u(R, D), g.u(R, D), *_state(g, R, D), *_tangents(g, D, 0)),
    "sd_bernoulli_probs_draw": lambda g: (g.u(R, D), *[g.u(R, 2 * D)] * 2, *_state(g, R, D), *_tangents(g, D)),
    "sd_categorical_probs_draw": lambda g: (g.pos(R, 6), g.u(R, 6), g.u(R, 6), 3, *_state(g, R, 6),
                                            *_tangents(g, 6, 0)),
    "sd_binomial_draw": lambda g: (np.floor(8 * g.u(R, D)), g.u(R, D), g.u(R, D), g.u(R, D), *_state(g, R, D),
                                   *_tangents(g, D)),
    "sd_binomial_logits_draw": lambda g: (np.floor(8 * g.u(R, D)), g.x(R, D), g.u(R, D), g.u(R, D),
                                          *_state(g, R, D), *_tangents(g, D, 0)),
    "sd_geometric_draw": lambda g: (g.u(R, D), g.u(R, D), g.u(R, D), *_state(g, R, D), *_tangents(g, D)),
    "sd_geometric_logits_draw": lambda g: (g.x(R, D), g.u(R, D), g.u(R, D), *_state(g, R, D), *_tangents(g, D, 0)),
    "tangent_seed": lambda g: (g.out(R, D), 1),
    "alt_differs": lambda g: (np.floor(2 * g.u(R, D)), g.out(R), 1, 2, 3),
    "sd_bank": lambda g: (g.bits(R), 1, 3, g.pos(R), g.x(R), g.x(R, 2), g.x(R, 2)),
    "sd_tangent_grad": lambda g: (g.pos(R), g.x(R), g.x(R, 2), g.x(R, 2), g.pos(R), 1, 3, 1, 2, g.out(4)),
    "sd_grad": lambda g: (g.bits(R, D), 1, 3, g.pos(R), g.bits(R), g.x(R), g.pos(R), g.x(R, D)),
    "alt_cost_diff": lambda g: (g.x(R), 1, 2, 3, g.x(R)),
    "alt_reset": lambda g: (g.x(R, D), g.bits(R), 1, 2, 3),
    "alt_reset_steps": lambda g: (g.x(3 * R, D), 2, g.bits(R), 1, 2, 3),
}
