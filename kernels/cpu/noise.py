"""CPU array kernels that fill preallocated (R, D) float32/float64 arrays with Philox noise.

out[r, c] equals the scalar function of ``rng`` at (seed, stream, r, c, step) for out's dtype,
bit for bit: rows are independent philox addresses (a split of the rows over threads would only
change who computes a value, never the value). Uniform and normal rows are one loop over philox
blocks (key, row, stream and step words hoisted out) that turns the 4 words into the LANES
values of their columns; logistic, Gumbel and Bernoulli rows take a second, in-place pass over
the (cached) row of uniforms, which LLVM vectorises better than one fused loop.
``philox4x32_10`` is inlined at numba-IR level and the float32 transforms are branch-free, so
the loops have no calls left and vectorise (AVX2: 8 lanes). A serial fill whose rows are short
(fewer than FLAT_BLOCKS philox blocks) and a whole number of blocks runs as ONE flat loop over
the blocks of several rows (``_flat_uniform`` / ``_flat_normal``: each block's (column block,
row) counter read from a small table), and its second pass as one loop over the whole array: a
row of 32 float32 columns is 8 blocks, fewer than one unrolled vector iteration, so the per-row
loops ran in their scalar remainders (measured: fill_logistic (160, 32) 12.6 us, 2.5 ns per
value, against 4.8 us for the same count in one long row). Same counters, same values, bit for
bit.
Every fill runs on the calling thread: a fill is a small part of a step, Numba's OpenMP workers
spin after a parallel region, taking the core the rest of the step runs on where cores are shared
(docs/benchmarks/kernels.md, "Noise fills on one thread"); fills of 4M values and more were parallel, the
rest already serial.  The dtype is chosen at compile time (``numba.extending.overload``), so every
public function is callable from a user's ``@njit`` code with a float32 or float64 ``out``.
Integer seeds above 2**63 - 1 must be passed as ``np.uint64``.
"""
import numpy as np
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import overload

from ..math.rng import (
    LANES_F32,
    LANES_F64,
    _MASK32,
    bernoulli_from_uniform_f32,
    bernoulli_from_uniform_f64,
    bernoulli_prob_from_uniform_f32,
    bernoulli_prob_from_uniform_f64,
    box_muller_f32,
    box_muller_f64,
    gumbel_from_uniform_f32,
    gumbel_from_uniform_f64,
    logistic_from_uniform_f32,
    logistic_from_uniform_f64,
    philox4x32_10,
    seed_key,
    uniform_f32_from_word,
    uniform_f64_from_words,
)
from ..native.views import flat_cells

FLAT_CUTOFF = 1 << 22  # the flat loop over several rows' blocks serves arrays below this many elements

_JIT = dict(cache=True, error_model="numpy")


# ------------------------------------------------------------- row kernels, per dtype
@njit(**_JIT)
def _uniform_row_f32(out, x, r, ra, k0, k1, s, t):
    """out[r, :] = uniform_f32(seed, stream, r, c, step) for every column c (4 lanes/call)."""
    d = out.shape[1]
    nb = d // LANES_F32
    for b in range(nb):
        w0, w1, w2, w3 = philox4x32_10(b, ra, s, t, k0, k1)
        c = LANES_F32 * b
        out[r, c] = uniform_f32_from_word(w0)
        out[r, c + 1] = uniform_f32_from_word(w1)
        out[r, c + 2] = uniform_f32_from_word(w2)
        out[r, c + 3] = uniform_f32_from_word(w3)
    c = LANES_F32 * nb
    if c < d:
        w0, w1, w2, w3 = philox4x32_10(nb, ra, s, t, k0, k1)
        out[r, c] = uniform_f32_from_word(w0)
        if c + 1 < d:
            out[r, c + 1] = uniform_f32_from_word(w1)
        if c + 2 < d:
            out[r, c + 2] = uniform_f32_from_word(w2)


@njit(**_JIT)
def _uniform_row_f64(out, x, r, ra, k0, k1, s, t):
    """out[r, :] = uniform_f64(seed, stream, r, c, step) for every column c (2 lanes/call)."""
    d = out.shape[1]
    nb = d // LANES_F64
    for b in range(nb):
        w0, w1, w2, w3 = philox4x32_10(b, ra, s, t, k0, k1)
        out[r, 2 * b] = uniform_f64_from_words(w0, w1)
        out[r, 2 * b + 1] = uniform_f64_from_words(w2, w3)
    if LANES_F64 * nb < d:
        w0, w1, w2, w3 = philox4x32_10(nb, ra, s, t, k0, k1)
        out[r, 2 * nb] = uniform_f64_from_words(w0, w1)


@njit(**_JIT)
def _normal_row_f32(out, x, r, ra, k0, k1, s, t):
    """out[r, :] = normal_f32(...): two Box-Muller pairs per philox call, in one loop."""
    d = out.shape[1]
    nb = d // LANES_F32
    for b in range(nb):
        w0, w1, w2, w3 = philox4x32_10(b, ra, s, t, k0, k1)
        c = LANES_F32 * b
        out[r, c], out[r, c + 1] = box_muller_f32(
            uniform_f32_from_word(w0), uniform_f32_from_word(w1))
        out[r, c + 2], out[r, c + 3] = box_muller_f32(
            uniform_f32_from_word(w2), uniform_f32_from_word(w3))
    c = LANES_F32 * nb
    if c < d:
        w0, w1, w2, w3 = philox4x32_10(nb, ra, s, t, k0, k1)
        z0, z1 = box_muller_f32(uniform_f32_from_word(w0), uniform_f32_from_word(w1))
        z2, z3 = box_muller_f32(uniform_f32_from_word(w2), uniform_f32_from_word(w3))
        out[r, c] = z0
        if c + 1 < d:
            out[r, c + 1] = z1
        if c + 2 < d:
            out[r, c + 2] = z2


@njit(**_JIT)
def _normal_row_f64(out, x, r, ra, k0, k1, s, t):
    """out[r, :] = normal_f64(...): one Box-Muller pair per philox call, in one loop."""
    d = out.shape[1]
    nb = d // LANES_F64
    for b in range(nb):
        w0, w1, w2, w3 = philox4x32_10(b, ra, s, t, k0, k1)
        out[r, 2 * b], out[r, 2 * b + 1] = box_muller_f64(
            uniform_f64_from_words(w0, w1), uniform_f64_from_words(w2, w3))
    if LANES_F64 * nb < d:
        w0, w1, w2, w3 = philox4x32_10(nb, ra, s, t, k0, k1)
        z0, z1 = box_muller_f64(uniform_f64_from_words(w0, w1), uniform_f64_from_words(w2, w3))
        out[r, 2 * nb] = z0


# ------------------------------------------------- flat fills of short rows (serial path)
FLAT_BLOCKS = 64  # rows with fewer philox blocks than this are filled by the flat loops below


@njit(**_JIT)
def _uniform_block_f32(f, o, w0, w1, w2, w3):
    f[o] = uniform_f32_from_word(w0)
    f[o + 1] = uniform_f32_from_word(w1)
    f[o + 2] = uniform_f32_from_word(w2)
    f[o + 3] = uniform_f32_from_word(w3)


@njit(**_JIT)
def _uniform_block_f64(f, o, w0, w1, w2, w3):
    f[o] = uniform_f64_from_words(w0, w1)
    f[o + 1] = uniform_f64_from_words(w2, w3)


@njit(**_JIT)
def _normal_block_f32(f, o, w0, w1, w2, w3):
    f[o], f[o + 1] = box_muller_f32(uniform_f32_from_word(w0), uniform_f32_from_word(w1))
    f[o + 2], f[o + 3] = box_muller_f32(uniform_f32_from_word(w2), uniform_f32_from_word(w3))


@njit(**_JIT)
def _normal_block_f64(f, o, w0, w1, w2, w3):
    f[o], f[o + 1] = box_muller_f64(uniform_f64_from_words(w0, w1), uniform_f64_from_words(w2, w3))


def _named(impl, target):
    """impl, named after the function it calls (``<target>_by_type``).

    The factories below make one closure per stub, all with one qualified name; Numba names a
    compiled function's symbol by its module, qualified name, argument types and a counter of
    the process that compiled it. Two such closures compiled in two processes could get the
    same symbol (fill_uniform's block writer and fill_normal's, both float64), and a process
    that loaded both fills from the cache then ran one writer for both: fill_normal drew
    uniforms. Named after their target, no two closures share a symbol."""
    name = f"{getattr(target, 'py_func', target).__name__}_by_type"
    impl.__name__ = impl.__qualname__ = name
    return impl


def _blocks_by_dtype(f32, f64):
    """A stub(f, o, w0, w1, w2, w3) writing one philox block's values at f[o:], by f's dtype."""

    def stub(f, o, w0, w1, w2, w3):
        """Block writer dispatched on f's dtype."""

    @overload(stub, jit_options=_JIT)
    def _ov(f, o, w0, w1, w2, w3):
        if f.dtype == types.float32:
            return _named(lambda f, o, w0, w1, w2, w3: f32(f, o, w0, w1, w2, w3), f32)
        return _named(lambda f, o, w0, w1, w2, w3: f64(f, o, w0, w1, w2, w3), f64)

    return stub


_uniform_block = _blocks_by_dtype(_uniform_block_f32, _uniform_block_f64)
_normal_block = _blocks_by_dtype(_normal_block_f32, _normal_block_f64)


def _lanes(out):
    """Values per philox block for out's dtype (LANES_F32 / LANES_F64)."""


@overload(_lanes, jit_options=_JIT)
def _lanes_ov(out):
    n = LANES_F32 if out.dtype == types.float32 else LANES_F64
    return lambda out: n


def _flat_ok(out):
    """True when the serial fill of out may run flat: a C-contiguous array type (decided when
    compiled) whose rows are a whole number of philox blocks, fewer than FLAT_BLOCKS per row
    (longer rows vectorise row by row)."""


@overload(_flat_ok, jit_options=_JIT)
def _flat_ok_ov(out):
    if not (isinstance(out, types.Array) and out.ndim == 2 and out.layout == "C"
            and out.dtype in (types.float32, types.float64)):
        return lambda out: False   # the row path types it (or names what is wrong)
    lanes = LANES_F32 if out.dtype == types.float32 else LANES_F64
    return lambda out: out.shape[1] % lanes == 0 and 0 < out.shape[1] < FLAT_BLOCKS * lanes


def _check_out(fname, out):
    """Nothing at run time; when compiled, a TypingError naming the problem unless out is a 2D
    float32 / float64 array (typed before any path of the fill)."""


@overload(_check_out, jit_options=_JIT)
def _check_out_ov(fname, out):
    _out_dtype(getattr(fname, "literal_value", "fill"), out)
    return lambda fname, out: None


def _block_tables():
    """For each count nb of philox blocks a row (1 <= nb < FLAT_BLOCKS): a flat loop's pass takes
    G = ceil(FLAT_BLOCKS / nb) rows, and its G nb blocks q have the column block CB[nb, q] = q % nb
    and the row offset RB[nb, q] = q // nb (tables, so that the loop over q has no division and
    vectorises; constants in the kernels' code, so that a fill allocates nothing)."""
    cb = np.zeros((FLAT_BLOCKS, 2 * FLAT_BLOCKS), np.uint32)
    rb = np.zeros((FLAT_BLOCKS, 2 * FLAT_BLOCKS), np.uint32)
    for nb in range(1, FLAT_BLOCKS):
        q = np.arange(((FLAT_BLOCKS + nb - 1) // nb) * nb)
        cb[nb, :q.size] = q % nb
        rb[nb, :q.size] = q // nb
    return cb, rb


_CB, _RB = _block_tables()


@njit(**_JIT)
def _flat_uniform(out, row0, k0, k1, s, t):
    """Serial fill_uniform of out (_flat_ok): the blocks of G rows at a time in one loop."""
    R, d = out.shape
    lanes = _lanes(out)
    nb = d // lanes
    G, cb, rb = (FLAT_BLOCKS + nb - 1) // nb, _CB[nb], _RB[nb]
    f = flat_cells(out)
    for g in range(0, R, G):
        ra = np.uint64(g + row0)
        n = (min(G, R - g) * d) // lanes
        v = f[g * d:]   # indices from 0: LLVM sees them non-negative, so the loop vectorises
        for q in range(n):
            w0, w1, w2, w3 = philox4x32_10(np.uint64(cb[q]), ra + np.uint64(rb[q]), s, t, k0, k1)
            _uniform_block(v, lanes * q, w0, w1, w2, w3)


@njit(**_JIT)
def _flat_normal(out, row0, k0, k1, s, t):
    """Serial fill_normal of out (_flat_ok): the blocks of G rows at a time in one loop."""
    R, d = out.shape
    lanes = _lanes(out)
    nb = d // lanes
    G, cb, rb = (FLAT_BLOCKS + nb - 1) // nb, _CB[nb], _RB[nb]
    f = flat_cells(out)
    for g in range(0, R, G):
        ra = np.uint64(g + row0)
        n = (min(G, R - g) * d) // lanes
        v = f[g * d:]   # indices from 0: LLVM sees them non-negative, so the loop vectorises
        for q in range(n):
            w0, w1, w2, w3 = philox4x32_10(np.uint64(cb[q]), ra + np.uint64(rb[q]), s, t, k0, k1)
            _normal_block(v, lanes * q, w0, w1, w2, w3)


def _out_dtype(fname, out):
    """The float dtype of `out` (numba type), or a TypingError naming the problem and fix."""
    if not isinstance(out, types.Array) or out.ndim != 2:
        raise TypingError(
            f"{fname}: out must be a preallocated 2D float32 or float64 array, got {out}"
        )
    if out.dtype not in (types.float32, types.float64):
        raise TypingError(
            f"{fname}: out has dtype {out.dtype}; allocate it as float32 or float64"
        )
    return out.dtype


def _rows_by_dtype(fname, row_f32, row_f64, needs_x):
    """A stub whose overload picks row_f32 or row_f64 from out's dtype at compile time."""

    def stub(out, x, r, ra, k0, k1, s, t):
        """Row kernel dispatched on out's dtype."""

    @overload(stub, jit_options=_JIT)
    def _ov(out, x, r, ra, k0, k1, s, t):
        dt = _out_dtype(fname, out)
        if needs_x and (not isinstance(x, types.Array) or x.ndim != 2):
            raise TypingError(f"{fname}: the logits/probs must be a 2D array like out, got {x}")
        if dt == types.float32:
            return _named(lambda out, x, r, ra, k0, k1, s, t: row_f32(out, x, r, ra, k0, k1, s, t), row_f32)
        return _named(lambda out, x, r, ra, k0, k1, s, t: row_f64(out, x, r, ra, k0, k1, s, t), row_f64)

    return stub


def _scalar_by_type(f32, f64):
    """A stub(a, u) whose overload calls f32 or f64 by the type of the uniform u."""

    def stub(a, u):
        """Scalar transform dispatched on the type of u."""

    @overload(stub, jit_options=_JIT)
    def _ov(a, u):
        if u == types.float32:
            return _named(lambda a, u: f32(a, u), f32)
        return _named(lambda a, u: f64(a, u), f64)

    return stub


def _unary_by_type(f32, f64):
    """A stub(u) whose overload calls f32 or f64 by the type of the uniform u."""

    def stub(u):
        """Scalar transform dispatched on the type of u."""

    @overload(stub, jit_options=_JIT)
    def _ov(u):
        if u == types.float32:
            return _named(lambda u: f32(u), f32)
        return _named(lambda u: f64(u), f64)

    return stub


_uniform_row = _rows_by_dtype("fill_uniform", _uniform_row_f32, _uniform_row_f64, False)
_normal_row = _rows_by_dtype("fill_normal", _normal_row_f32, _normal_row_f64, False)

# Second-pass transforms u -> value (the Bernoulli ones also take the logit / p).
_to_logistic = _unary_by_type(logistic_from_uniform_f32, logistic_from_uniform_f64)
_to_gumbel = _unary_by_type(gumbel_from_uniform_f32, gumbel_from_uniform_f64)
_to_bernoulli_logit = _scalar_by_type(bernoulli_from_uniform_f32, bernoulli_from_uniform_f64)
_to_bernoulli_prob = _scalar_by_type(
    bernoulli_prob_from_uniform_f32, bernoulli_prob_from_uniform_f64)


@njit(**_JIT)
def _logistic_row(out, x, r, ra, k0, k1, s, t):
    _uniform_row(out, x, r, ra, k0, k1, s, t)
    for c in range(out.shape[1]):
        out[r, c] = _to_logistic(out[r, c])


@njit(**_JIT)
def _gumbel_row(out, x, r, ra, k0, k1, s, t):
    _uniform_row(out, x, r, ra, k0, k1, s, t)
    for c in range(out.shape[1]):
        out[r, c] = _to_gumbel(out[r, c])


@njit(**_JIT)
def _bernoulli_logit_row(out, x, r, ra, k0, k1, s, t):
    _uniform_row(out, x, r, ra, k0, k1, s, t)
    for c in range(out.shape[1]):
        out[r, c] = _to_bernoulli_logit(x[r, c], out[r, c])


@njit(**_JIT)
def _bernoulli_prob_row(out, x, r, ra, k0, k1, s, t):
    _uniform_row(out, x, r, ra, k0, k1, s, t)
    for c in range(out.shape[1]):
        out[r, c] = _to_bernoulli_prob(x[r, c], out[r, c])


# -------------------------------------------------------------------- public array fills
@njit(**_JIT)
def _address(seed, stream, step):
    k0, k1 = seed_key(seed)
    return k0, k1, np.uint64(stream) & _MASK32, np.uint64(step) & _MASK32


@njit(**_JIT)
def _check_shape(fname, out, x):
    if x.shape != out.shape:
        raise ValueError(fname + ": the logits/probs array must have out's shape")


@njit(**_JIT)
def fill_uniform(out, seed, stream, step, row0=0):
    """out[r, c] = uniform_<dtype>(seed, stream, row0 + r, c, step); U(0, 1), never 0 or 1."""
    _check_out("fill_uniform", out)
    k0, k1, s, t = _address(seed, stream, step)
    if out.size < FLAT_CUTOFF and _flat_ok(out):
        _flat_uniform(out, row0, k0, k1, s, t)
    else:
        for r in range(out.shape[0]):
            _uniform_row(out, out, r, r + row0, k0, k1, s, t)


@njit(**_JIT)
def fill_normal(out, seed, stream, step, row0=0):
    """out[r, c] = normal_<dtype>(seed, stream, row0 + r, c, step); N(0, 1) by Box-Muller."""
    _check_out("fill_normal", out)
    k0, k1, s, t = _address(seed, stream, step)
    if out.size < FLAT_CUTOFF and _flat_ok(out):
        _flat_normal(out, row0, k0, k1, s, t)
    else:
        for r in range(out.shape[0]):
            _normal_row(out, out, r, r + row0, k0, k1, s, t)


@njit(**_JIT)
def fill_logistic(out, seed, stream, step, row0=0):
    """out[r, c] = logistic_<dtype>(seed, stream, row0 + r, c, step); standard logistic noise."""
    _check_out("fill_logistic", out)
    k0, k1, s, t = _address(seed, stream, step)
    if out.size < FLAT_CUTOFF and _flat_ok(out):
        _flat_uniform(out, row0, k0, k1, s, t)
        f = flat_cells(out)
        for i in range(f.shape[0]):
            f[i] = _to_logistic(f[i])
    else:
        for r in range(out.shape[0]):
            _logistic_row(out, out, r, r + row0, k0, k1, s, t)


@njit(**_JIT)
def fill_gumbel(out, seed, stream, step, row0=0):
    """out[r, c] = gumbel_<dtype>(seed, stream, row0 + r, c, step); standard Gumbel (max) noise."""
    _check_out("fill_gumbel", out)
    k0, k1, s, t = _address(seed, stream, step)
    if out.size < FLAT_CUTOFF and _flat_ok(out):
        _flat_uniform(out, row0, k0, k1, s, t)
        f = flat_cells(out)
        for i in range(f.shape[0]):
            f[i] = _to_gumbel(f[i])
    else:
        for r in range(out.shape[0]):
            _gumbel_row(out, out, r, r + row0, k0, k1, s, t)


@njit(**_JIT)
def fill_bernoulli_logit(out, logits, seed, stream, step, row0=0):
    """out[r, c] = bernoulli_logit_<dtype>(logits[r, c], seed, stream, row0 + r, c, step) in {0, 1}.

    h = [logit + logistic noise > 0], the noise being fill_logistic's at the same address.
    """
    _check_shape("fill_bernoulli_logit", out, logits)
    k0, k1, s, t = _address(seed, stream, step)
    if out.size < FLAT_CUTOFF and _flat_ok(out) and _flat_ok(logits):
        _flat_uniform(out, row0, k0, k1, s, t)
        f = flat_cells(out)
        a = flat_cells(logits)
        for i in range(f.shape[0]):
            f[i] = _to_bernoulli_logit(a[i], f[i])
    else:
        for r in range(out.shape[0]):
            _bernoulli_logit_row(out, logits, r, r + row0, k0, k1, s, t)


@njit(**_JIT)
def fill_bernoulli_prob(out, probs, seed, stream, step, row0=0):
    """out[r, c] = bernoulli_prob_<dtype>(probs[r, c], seed, stream, row0 + r, c, step) in {0, 1}.

    h = [u < p] (inverse CDF), u being fill_uniform's value at the same address.
    """
    _check_shape("fill_bernoulli_prob", out, probs)
    k0, k1, s, t = _address(seed, stream, step)
    if out.size < FLAT_CUTOFF and _flat_ok(out) and _flat_ok(probs):
        _flat_uniform(out, row0, k0, k1, s, t)
        f = flat_cells(out)
        a = flat_cells(probs)
        for i in range(f.shape[0]):
            f[i] = _to_bernoulli_prob(a[i], f[i])
    else:
        for r in range(out.shape[0]):
            _bernoulli_prob_row(out, probs, r, r + row0, k0, k1, s, t)


# ------------------------------------------------ fills of a plate of groups: rows by their group
@njit(**_JIT)
def _group_address(index, reps, r):
    """The noise row of row r of a group's node: row (index[r // reps, 0] * reps + r % reps), the
    row its group's number gives (the same for every data row of the group) and its sample."""
    return int(index[r // reps, 0]) * reps + r % reps


@njit(**_JIT)
def fill_uniform_at(out, seed, stream, step, index, reps):
    """out[r] = fill_uniform's row _group_address(index, reps, r): each data row i's reps rows
    take the rows of its group index[i, 0] (a node of a plate of groups, drawn once per group)."""
    _check_out("fill_uniform_at", out)
    k0, k1, s, t = _address(seed, stream, step)
    for r in range(out.shape[0]):
        _uniform_row(out, out, r, _group_address(index, reps, r), k0, k1, s, t)


@njit(**_JIT)
def fill_normal_at(out, seed, stream, step, index, reps):
    """out[r] = fill_normal's row _group_address(index, reps, r) (fill_uniform_at)."""
    _check_out("fill_normal_at", out)
    k0, k1, s, t = _address(seed, stream, step)
    for r in range(out.shape[0]):
        _normal_row(out, out, r, _group_address(index, reps, r), k0, k1, s, t)


@njit(**_JIT)
def fill_logistic_at(out, seed, stream, step, index, reps):
    """out[r] = fill_logistic's row _group_address(index, reps, r) (fill_uniform_at)."""
    _check_out("fill_logistic_at", out)
    k0, k1, s, t = _address(seed, stream, step)
    for r in range(out.shape[0]):
        _logistic_row(out, out, r, _group_address(index, reps, r), k0, k1, s, t)


@njit(**_JIT)
def fill_gumbel_at(out, seed, stream, step, index, reps):
    """out[r] = fill_gumbel's row _group_address(index, reps, r) (fill_uniform_at)."""
    _check_out("fill_gumbel_at", out)
    k0, k1, s, t = _address(seed, stream, step)
    for r in range(out.shape[0]):
        _gumbel_row(out, out, r, _group_address(index, reps, r), k0, k1, s, t)


# rows narrower than one philox block (a scalar node's column): fills of their own, which the
# lowering calls for such nodes (cpu/noise_narrow.py)
from .noise_narrow import GUMBEL, LOGISTIC, NORMAL, UNIFORM, narrow_fill  # noqa: E402


@njit(**_JIT)
def fill_uniform_narrow(out, seed, stream, step, row0=0):
    """fill_uniform of rows narrower than a philox block (float64: 1 column, float32: 1 to 3)."""
    _check_out("fill_uniform_narrow", out)
    narrow_fill(UNIFORM, out, seed, stream, step, row0, _lanes(out))


@njit(**_JIT)
def fill_normal_narrow(out, seed, stream, step, row0=0):
    """fill_normal of rows narrower than a philox block."""
    _check_out("fill_normal_narrow", out)
    narrow_fill(NORMAL, out, seed, stream, step, row0, _lanes(out))


@njit(**_JIT)
def fill_logistic_narrow(out, seed, stream, step, row0=0):
    """fill_logistic of rows narrower than a philox block."""
    _check_out("fill_logistic_narrow", out)
    narrow_fill(LOGISTIC, out, seed, stream, step, row0, _lanes(out))


@njit(**_JIT)
def fill_gumbel_narrow(out, seed, stream, step, row0=0):
    """fill_gumbel of rows narrower than a philox block."""
    _check_out("fill_gumbel_narrow", out)
    narrow_fill(GUMBEL, out, seed, stream, step, row0, _lanes(out))
