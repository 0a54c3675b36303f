"""Noise fills of rows narrower than one philox block (a scalar node's one column, a simulation's
state): the loop of cpu/noise.py's `fill_<kind>_narrow`, the values of `fill_<kind>` bit for bit,
one block a row in one loop over the rows. `fill_<kind>` fills such rows through its per-row path,
a call a row (16 ns a value for one float64 column against 3 ns here); a flat path of its own for
them would be compiled into every fill of every model, so the lowering calls the narrow fills
where a node is that narrow (lowering/context.py, `noise`)."""
import numpy as np
from numba import njit, types
from numba.extending import overload

from ..math.rng import (box_muller_f32, box_muller_f64, gumbel_from_uniform_f32,
                        gumbel_from_uniform_f64, logistic_from_uniform_f32, logistic_from_uniform_f64,
                        _MASK32, philox4x32_10, seed_key, uniform_f32_from_word, uniform_f64_from_words)

_JIT = dict(cache=True, error_model="numpy")

UNIFORM, NORMAL, LOGISTIC, GUMBEL = 0, 1, 2, 3


def _lane(kind, out, j, w0, w1, w2, w3):
    """Lane j of a philox block as `kind`'s value in out's dtype (rng's address table)."""


@overload(_lane, jit_options=_JIT)
def _lane_ov(kind, out, j, w0, w1, w2, w3):
    if out.dtype == types.float32:
        def f32(kind, out, j, w0, w1, w2, w3):
            if kind == NORMAL:
                a, b = (w0, w1) if j < 2 else (w2, w3)
                z = box_muller_f32(uniform_f32_from_word(a), uniform_f32_from_word(b))
                return z[0] if j % 2 == 0 else z[1]
            u = uniform_f32_from_word(w0 if j == 0 else (w1 if j == 1 else w2))
            if kind == LOGISTIC:
                return logistic_from_uniform_f32(u)
            return gumbel_from_uniform_f32(u) if kind == GUMBEL else u
        return f32

    def f64(kind, out, j, w0, w1, w2, w3):   # one lane: j = 0
        if kind == NORMAL:
            return box_muller_f64(uniform_f64_from_words(w0, w1), uniform_f64_from_words(w2, w3))[0]
        u = uniform_f64_from_words(w0, w1)
        if kind == LOGISTIC:
            return logistic_from_uniform_f64(u)
        return gumbel_from_uniform_f64(u) if kind == GUMBEL else u
    return f64


@njit(**_JIT)
def narrow_fill(kind, out, seed, stream, step, row0, lanes):
    """out[r, c] = the `kind` noise at (seed, stream, row0 + r, c, step), out's rows narrower than
    one philox block of `lanes` values (the caller's checked out: cpu/noise.py)."""
    d = out.shape[1]
    if not 0 < d < lanes:
        raise ValueError("a narrow noise fill takes rows of fewer columns than a philox block's values "
                         "(float64: 1, float32: 1 to 3); call fill_<kind> for wider rows")
    k0, k1 = seed_key(seed)
    s, t = np.uint64(stream) & _MASK32, np.uint64(step) & _MASK32
    for r in range(out.shape[0]):
        w0, w1, w2, w3 = philox4x32_10(np.uint64(0), np.uint64(r + row0), s, t, k0, k1)
        if d == 1:
            out[r, 0] = _lane(kind, out, 0, w0, w1, w2, w3)
        else:
            for j in range(d):
                out[r, j] = _lane(kind, out, j, w0, w1, w2, w3)
