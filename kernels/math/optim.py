"""Scalar formulas of the optimisers (SGD with Robbins-Monro rates, heavy-ball momentum, Adam),
shared by the optimiser kernels of both targets (families/optim.py; on CUDA through device()),
fit's nopython loop cpu/train.py and ppl.optim; simd.py's vector Adam repeats their flushes."""
import math

from numba import njit

from .scalar import hyper, like


F32_NORMAL_MIN = 1.1754943508222875e-38   # the smallest normal float32: optimiser moments below it are flushed to 0
ADAM_G_MIN = 2.0**-56   # |g| below it counts as 0 in Adam's moments: (1 - b2) g^2 would be subnormal


@njit(cache=True, error_model="numpy")
def momentum_velocity(vel, g, lr, mu):
    """Heavy-ball velocity (Polyak 1964): mu vel - lr g, flushed to 0 below the float32 normal
    range (see adam_step)."""
    nv = mu * vel - lr * g
    return like(nv, 0.0) if abs(nv) < like(nv, F32_NORMAL_MIN) else nv   # a NaN stays NaN


@njit(cache=True)
def robbins_monro_rate(a0, t0, kappa, t):
    """a_t = a0 / (1 + t / t0)^kappa (Robbins & Monro 1951), t = updates applied before (float).
    No fast-math: ppl.optim and fit's nopython loop must get the same rate bit for bit."""
    return a0 / (1.0 + t / t0) ** kappa


@njit(cache=True, error_model="numpy")
def adam_bias_corrections(b1, b2, t):
    """(1 / (1 - b1^t), 1 / (1 - b2^t)) of Adam (Kingma & Ba 2015, Algorithm 1)."""
    one = like(b1, 1.0)
    tt = like(b1, t)
    return one / (one - math.pow(b1, tt)), one / (one - math.pow(b2, tt))


@njit(cache=True, error_model="numpy")
def adam_step(g, m, v, lr, b1, b2, c1, c2, eps):
    """(delta, m', v') of one Adam update: m' = b1 m + (1-b1) g ; v' = b2 v + (1-b2) g^2 ;
    delta = lr (m' c1) / (sqrt(v' c2) + eps), theta -= delta (Kingma & Ba 2015)."""
    one = like(g, 1.0)
    zero = like(g, 0.0)
    tiny = like(g, F32_NORMAL_MIN)
    # No subnormal operand or result: the CPU handles them tens of times slower. Moments below
    # the float32 normal range are flushed to 0 (a parameter whose gradient stays 0, e.g. of an
    # input pixel that is always 0, would otherwise decay m into subnormals: Adam on the SBN
    # 2.1x slower), and so is a gradient below 2^-56, whose square is (a saturated unit's
    # gradient, ~1e-20, made a straight-through SBN's step 1.7x slower after 10^5 steps). Both
    # change the step lr m / (sqrt(v) + eps) by less than lr 2^-56 / eps. A NaN stays NaN.
    g = zero if abs(g) < like(g, ADAM_G_MIN) else g
    mi = b1 * m + (one - b1) * g
    vi = b2 * v + (one - b2) * g * g
    mi = zero if abs(mi) < tiny else mi
    vi = zero if vi < tiny else vi
    return lr * (mi * c1) / (math.sqrt(vi * c2) + eps), mi, vi


@njit(cache=True, error_model="numpy")
def sgd_entry(i, theta, grad, lr):
    """Entry i of an SGD step, lr in theta's precision: theta -= lr grad."""
    theta[i] -= lr * grad[i]


@njit(cache=True, error_model="numpy")
def momentum_entry(i, theta, grad, vel, lr, mu):
    """Entry i of a heavy-ball step, lr and mu in theta's precision: vel = mu vel - lr grad ;
    theta += vel."""
    v = momentum_velocity(vel[i], grad[i], lr, mu)
    vel[i] = v
    theta[i] += v


@njit(cache=True, error_model="numpy")
def adam_constants(theta, beta1, beta2, eps, t):
    """(b1, b2, eps, c1, c2) of Adam's step t (1-based) in theta's precision (hyper-parameters
    1-element arrays or numbers)."""
    b1 = like(theta, hyper(beta1))
    b2 = like(theta, hyper(beta2))
    c1, c2 = adam_bias_corrections(b1, b2, t)
    return b1, b2, like(theta, hyper(eps)), c1, c2


@njit(cache=True, error_model="numpy")
def adam_update_entry(i, theta, grad, m, v, lr, b1, b2, c1, c2, eps):
    """Entry i of an Adam step from its constants (adam_constants): adam_step, its moments and
    theta written back."""
    delta, mi, vi = adam_step(grad[i], m[i], v[i], lr, b1, b2, c1, c2, eps)
    m[i] = mi
    v[i] = vi
    theta[i] -= delta


@njit(cache=True, error_model="numpy")
def adam_entry(i, theta, grad, m, v, lr, beta1, beta2, eps, t):
    """Entry i of Adam's step t (1-based), lr in theta's precision (a thread's whole step)."""
    b1, b2, ep, c1, c2 = adam_constants(theta, beta1, beta2, eps, t)
    adam_update_entry(i, theta, grad, m, v, lr, b1, b2, c1, c2, ep)


SCHED_CONSTANT, SCHED_EXPONENTIAL, SCHED_STEP, SCHED_COSINE = 0, 1, 2, 3


@njit(cache=True)
def schedule_factor(kind, warmup, a, b, t):
    """The learning rate's factor at update t (0-based, a float; ppl.optim's schedules): a linear
    warm-up (t + 1) / warmup over the first `warmup` updates, then the decay of the updates u = t -
    warmup after it: constant 1; exponential b^(u / a); step b^floor(u / a); cosine (Loshchilov &
    Hutter 2017) b + (1 - b) (1 + cos(pi min(u, a) / a)) / 2, b the final fraction. No fast-math:
    ppl.optim and fit's nopython loop get the same rate bit for bit."""
    if t < warmup:
        return (t + 1.0) / warmup
    u = t - warmup
    if kind == SCHED_EXPONENTIAL:
        return b ** (u / a)
    if kind == SCHED_STEP:
        return b ** float(math.floor(u / a))   # a float power: no integer power loop compiled
    if kind == SCHED_COSINE:
        return b + (1.0 - b) * 0.5 * (1.0 + math.cos(math.pi * min(u, a) / a))
    return 1.0
