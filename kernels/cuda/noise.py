"""CUDA twin of ``cpu/noise.py``: fill preallocated (R, D) float32/float64 device arrays with
Philox noise addressed by (seed, stream, row, col, step).

One thread per (row, philox block): it computes the block's 4 words once and writes the
LANES values of its columns (4 for float32, 2 for float64), exactly as a CPU row kernel
iteration does, with the device versions (``device()``) of the same ``rng.py`` functions.
So out[r, c] is the scalar ``rng`` function at that address, as on the CPU: uniforms and
every integer step bit-identical; float transforms identical up to the target's arithmetic
(see ``tests/kernels/test_gpu_kernels.py`` for the tolerances and why).

Every fill takes its step as a number or as a device clock (an int64 device array whose word 0
is the step; runtime/cuda_graph.py): a fill on a clock reads the step on the device, so a
captured step replays with the step the clock holds.
"""
import inspect
from types import SimpleNamespace as _Namespace

import numpy as np
from numba import cuda, types
from numba.extending import overload

from ..math import rng
from .device import device
from ..native.launch import launch
from ..registry import cells, items

_philox = device(rng.philox4x32_10)
_u32 = device(rng.uniform_f32_from_word)
_u64 = device(rng.uniform_f64_from_words)
_logistic_f32 = device(rng.logistic_from_uniform_f32)
_logistic_f64 = device(rng.logistic_from_uniform_f64)
_gumbel_f32 = device(rng.gumbel_from_uniform_f32)
_gumbel_f64 = device(rng.gumbel_from_uniform_f64)
_bern_logit_f32 = device(rng.bernoulli_from_uniform_f32)
_bern_logit_f64 = device(rng.bernoulli_from_uniform_f64)
_bern_prob_f32 = device(rng.bernoulli_prob_from_uniform_f32)
_bern_prob_f64 = device(rng.bernoulli_prob_from_uniform_f64)
_box_muller_f32 = device(rng.box_muller_f32)
_box_muller_f64 = device(rng.box_muller_f64)

# what a uniform is turned into (the second pass of the CPU row kernels)
UNIFORM, LOGISTIC, GUMBEL, BERNOULLI_LOGIT, BERNOULLI_PROB = 0, 1, 2, 3, 4


@cuda.jit(device=True)
def _put_f32(out, x, kind, r, c, u):
    if kind == LOGISTIC:
        out[r, c] = _logistic_f32(u)
    elif kind == GUMBEL:
        out[r, c] = _gumbel_f32(u)
    elif kind == BERNOULLI_LOGIT:
        out[r, c] = _bern_logit_f32(x[r, c], u)
    elif kind == BERNOULLI_PROB:
        out[r, c] = _bern_prob_f32(x[r, c], u)
    else:
        out[r, c] = u


@cuda.jit(device=True)
def _put_f64(out, x, kind, r, c, u):
    if kind == LOGISTIC:
        out[r, c] = _logistic_f64(u)
    elif kind == GUMBEL:
        out[r, c] = _gumbel_f64(u)
    elif kind == BERNOULLI_LOGIT:
        out[r, c] = _bern_logit_f64(x[r, c], u)
    elif kind == BERNOULLI_PROB:
        out[r, c] = _bern_prob_f64(x[r, c], u)
    else:
        out[r, c] = u


_MASK32 = np.uint64(0xFFFFFFFF)


def _word(t):
    """The step word of a number or a device clock (its word 0), masked as _address masks a step
    (a number _address masked already stays the same). The pure-Python body runs in the
    simulator; compiled code takes the overload below, one specialisation per kind of t."""
    return (np.uint64(t[0]) if getattr(t, "ndim", 0) == 1 else np.uint64(t)) & _MASK32


@overload(_word)
def _word_overload(t):
    if isinstance(t, types.Array):
        return lambda t: np.uint64(t[0]) & _MASK32
    return lambda t: np.uint64(t) & _MASK32


@cuda.jit(device=True)
def _uniform_block_f32(out, x, kind, r, b, ra, k0, k1, s, t):
    """Philox block b of out's row r, drawn at address row ra: its 4 float32 columns."""
    D = out.shape[1]
    w0, w1, w2, w3 = _philox(b, ra, s, _word(t), k0, k1)
    c = 4 * b
    _put_f32(out, x, kind, r, c, _u32(w0))
    if c + 1 < D:
        _put_f32(out, x, kind, r, c + 1, _u32(w1))
    if c + 2 < D:
        _put_f32(out, x, kind, r, c + 2, _u32(w2))
    if c + 3 < D:
        _put_f32(out, x, kind, r, c + 3, _u32(w3))


@cuda.jit(device=True)
def _uniform_block_f64(out, x, kind, r, b, ra, k0, k1, s, t):
    """Philox block b of out's row r, drawn at address row ra: its 2 float64 columns."""
    D = out.shape[1]
    w0, w1, w2, w3 = _philox(b, ra, s, _word(t), k0, k1)
    c = 2 * b
    _put_f64(out, x, kind, r, c, _u64(w0, w1))
    if c + 1 < D:
        _put_f64(out, x, kind, r, c + 1, _u64(w2, w3))


@cuda.jit(device=True)
def _normal_block_f32(out, r, b, ra, k0, k1, s, t):
    """Philox block b of out's row r, drawn at address row ra: 4 float32 normals by Box-Muller."""
    D = out.shape[1]
    w0, w1, w2, w3 = _philox(b, ra, s, _word(t), k0, k1)
    c = 4 * b
    z0, z1 = _box_muller_f32(_u32(w0), _u32(w1))
    z2, z3 = _box_muller_f32(_u32(w2), _u32(w3))
    out[r, c] = z0
    if c + 1 < D:
        out[r, c + 1] = z1
    if c + 2 < D:
        out[r, c + 2] = z2
    if c + 3 < D:
        out[r, c + 3] = z3


@cuda.jit(device=True)
def _normal_block_f64(out, r, b, ra, k0, k1, s, t):
    """Philox block b of out's row r, drawn at address row ra: 2 float64 normals by Box-Muller."""
    D = out.shape[1]
    w0, w1, w2, w3 = _philox(b, ra, s, _word(t), k0, k1)
    c = 2 * b
    z0, z1 = _box_muller_f64(_u64(w0, w1), _u64(w2, w3))
    out[r, c] = z0
    if c + 1 < D:
        out[r, c + 1] = z1


# one thread per (row r, philox block b) of out; row r is drawn at address r + o
def _uniform_kind_f32_body(i, out, x, kind, k0, k1, s, t, o):
    nb = (out.shape[1] + 3) // 4
    r = i // nb
    _uniform_block_f32(out, x, kind, r, i - r * nb, r + o, k0, k1, s, t)


_uniform_kind_f32 = items(_uniform_kind_f32_body, "out.shape[0] * ((out.shape[1] + 3) // 4)")


def _uniform_kind_f64_body(i, out, x, kind, k0, k1, s, t, o):
    nb = (out.shape[1] + 1) // 2
    r = i // nb
    _uniform_block_f64(out, x, kind, r, i - r * nb, r + o, k0, k1, s, t)


_uniform_kind_f64 = items(_uniform_kind_f64_body, "out.shape[0] * ((out.shape[1] + 1) // 2)")


def _normal_f32_body(i, out, k0, k1, s, t, o):
    nb = (out.shape[1] + 3) // 4
    r = i // nb
    _normal_block_f32(out, r, i - r * nb, r + o, k0, k1, s, t)


_normal_f32 = items(_normal_f32_body, "out.shape[0] * ((out.shape[1] + 3) // 4)")


def _normal_f64_body(i, out, k0, k1, s, t, o):
    nb = (out.shape[1] + 1) // 2
    r = i // nb
    _normal_block_f64(out, r, i - r * nb, r + o, k0, k1, s, t)


_normal_f64 = items(_normal_f64_body, "out.shape[0] * ((out.shape[1] + 1) // 2)")


def _is_clock(step):
    return getattr(step, "ndim", 0) == 1


def _address(seed, stream, step):
    """Philox key words and the masked stream / step words, computed on the host (a device clock
    passed as it is)."""
    k0, k1 = rng.seed_key.py_func(seed)
    mask = np.uint64(0xFFFFFFFF)
    return k0, k1, np.uint64(stream) & mask, step if _is_clock(step) else np.uint64(step) & mask


def _is_f32(fname, out):
    """True for float32 out, False for float64; a clear error otherwise (as cpu_noise)."""
    if getattr(out, "ndim", None) != 2:
        raise TypeError(
            f"{fname}: out must be a preallocated 2D float32 or float64 device array, got {out!r}"
        )
    dt = np.dtype(out.dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{fname}: out has dtype {dt}; allocate it as float32 or float64")
    return dt == np.float32


def _fill(fname, out, x, kind, seed, stream, step, row0=0):
    f32 = _is_f32(fname, out)
    lanes = rng.LANES_F32 if f32 else rng.LANES_F64
    nb = (out.shape[1] + lanes - 1) // lanes
    k = launch(_uniform_kind_f32 if f32 else _uniform_kind_f64, out.shape[0] * nb)
    if k is not None:
        k(out, x, kind, *_address(seed, stream, step), np.int64(row0))


def fill_uniform(out, seed, stream, step, row0=0):
    """out[r, c] = uniform_<dtype>(seed, stream, row0 + r, c, step); U(0, 1), never 0 or 1."""
    _fill("fill_uniform", out, out, UNIFORM, seed, stream, step, row0)


def fill_normal(out, seed, stream, step, row0=0):
    """out[r, c] = normal_<dtype>(seed, stream, row0 + r, c, step); N(0, 1) by Box-Muller."""
    f32 = _is_f32("fill_normal", out)
    lanes = rng.LANES_F32 if f32 else rng.LANES_F64
    nb = (out.shape[1] + lanes - 1) // lanes
    k = launch(_normal_f32 if f32 else _normal_f64, out.shape[0] * nb)
    if k is not None:
        k(out, *_address(seed, stream, step), np.int64(row0))


def fill_logistic(out, seed, stream, step, row0=0):
    """out[r, c] = logistic_<dtype>(seed, stream, row0 + r, c, step); standard logistic noise."""
    _fill("fill_logistic", out, out, LOGISTIC, seed, stream, step, row0)


def fill_gumbel(out, seed, stream, step, row0=0):
    """out[r, c] = gumbel_<dtype>(seed, stream, row0 + r, c, step); standard Gumbel (max) noise."""
    _fill("fill_gumbel", out, out, GUMBEL, seed, stream, step, row0)


def _check_shape(fname, out, x):
    if tuple(x.shape) != tuple(out.shape):
        raise ValueError(fname + ": the logits/probs array must have out's shape")


def fill_bernoulli_logit(out, logits, seed, stream, step, row0=0):
    """out[r, c] = bernoulli_logit_<dtype>(logits[r, c], seed, stream, row0 + r, c, step) in {0, 1}."""
    _check_shape("fill_bernoulli_logit", out, logits)
    _fill("fill_bernoulli_logit", out, logits, BERNOULLI_LOGIT, seed, stream, step, row0)


def fill_bernoulli_prob(out, probs, seed, stream, step, row0=0):
    """out[r, c] = bernoulli_prob_<dtype>(probs[r, c], seed, stream, row0 + r, c, step) in {0, 1}."""
    _check_shape("fill_bernoulli_prob", out, probs)
    _fill("fill_bernoulli_prob", out, probs, BERNOULLI_PROB, seed, stream, step, row0)


# the same blocks, row r drawn at its group's address index[r // reps, 0] * reps + r % reps
def _uniform_at_f32_body(i, out, kind, k0, k1, s, t, index, reps):
    nb = (out.shape[1] + 3) // 4
    r = i // nb
    _uniform_block_f32(out, out, kind, r, i - r * nb, int(index[r // reps, 0]) * reps + r % reps, k0, k1, s, t)


_uniform_at_f32 = items(_uniform_at_f32_body, "out.shape[0] * ((out.shape[1] + 3) // 4)")


def _uniform_at_f64_body(i, out, kind, k0, k1, s, t, index, reps):
    nb = (out.shape[1] + 1) // 2
    r = i // nb
    _uniform_block_f64(out, out, kind, r, i - r * nb, int(index[r // reps, 0]) * reps + r % reps, k0, k1, s, t)


_uniform_at_f64 = items(_uniform_at_f64_body, "out.shape[0] * ((out.shape[1] + 1) // 2)")


def _normal_at_f32_body(i, out, k0, k1, s, t, index, reps):
    nb = (out.shape[1] + 3) // 4
    r = i // nb
    _normal_block_f32(out, r, i - r * nb, int(index[r // reps, 0]) * reps + r % reps, k0, k1, s, t)


_normal_at_f32 = items(_normal_at_f32_body, "out.shape[0] * ((out.shape[1] + 3) // 4)")


def _normal_at_f64_body(i, out, k0, k1, s, t, index, reps):
    nb = (out.shape[1] + 1) // 2
    r = i // nb
    _normal_block_f64(out, r, i - r * nb, int(index[r // reps, 0]) * reps + r % reps, k0, k1, s, t)


_normal_at_f64 = items(_normal_at_f64_body, "out.shape[0] * ((out.shape[1] + 1) // 2)")


def _fill_at(fname, out, kind, seed, stream, step, index, reps):
    f32 = _is_f32(fname, out)
    nb = (out.shape[1] + (3 if f32 else 1)) // (4 if f32 else 2)
    if kind == NORMAL:
        k = launch(_normal_at_f32 if f32 else _normal_at_f64, out.shape[0] * nb)
        if k is not None:
            k(out, *_address(seed, stream, step), index, np.int64(reps))
        return
    k = launch(_uniform_at_f32 if f32 else _uniform_at_f64, out.shape[0] * nb)
    if k is not None:
        k(out, kind, *_address(seed, stream, step), index, np.int64(reps))


NORMAL = -1


def fill_uniform_at(out, seed, stream, step, index, reps):
    """out[r] = fill_uniform's row index[r // reps, 0] * reps + r % reps (a plate of groups' node)."""
    _fill_at("fill_uniform_at", out, UNIFORM, seed, stream, step, index, reps)


def fill_normal_at(out, seed, stream, step, index, reps):
    """out[r] = fill_normal's row index[r // reps, 0] * reps + r % reps (a plate of groups' node)."""
    _fill_at("fill_normal_at", out, NORMAL, seed, stream, step, index, reps)


def fill_logistic_at(out, seed, stream, step, index, reps):
    """out[r] = fill_logistic's row index[r // reps, 0] * reps + r % reps (a plate of groups' node)."""
    _fill_at("fill_logistic_at", out, LOGISTIC, seed, stream, step, index, reps)


def fill_gumbel_at(out, seed, stream, step, index, reps):
    """out[r] = fill_gumbel's row index[r // reps, 0] * reps + r % reps (a plate of groups' node)."""
    _fill_at("fill_gumbel_at", out, GUMBEL, seed, stream, step, index, reps)


# ----------------------------------------------------------------------------- one cell
# A fill as a member of a joined kernel (kernels/cuda/fused.py): each cell's value is the scalar
# draw of math/rng.py at its address, the bits the block fill writes there (a Philox call per
# cell, not per block: the price of sharing the launch). A body per dtype; the step a number or a
# device clock, its word masked as `_address` masks it (`_word`).


def _cell_bodies(draw, x, spread=False):
    """(float32 body, float64 body) of one fill, cell (r, j) of out drawn at row r + row0 (with
    `spread`: at row r // S + row0, the S rows of a drawn row alike); x: the name of the array
    whose [r, j] it reads (a Bernoulli's logits or probs), or None."""
    src = ("def {name}(r, j, out{x}, seed, stream, step, row0{S}):\n"
           "    out[r, j] = draw_({xv}seed, np.uint64(stream) & MASK_, {row} + row0, j, word_(step))\n")
    out = []
    for suffix in ("f32", "f64"):
        glb = {"draw_": getattr(rng, f"{draw}_{suffix}"), "np": np, "MASK_": _MASK32, "word_": _word}
        name = f"_{draw}_{'spread' if spread else 'cell'}_{suffix}"
        text = src.format(name=name, x=f", {x}" if x else "", xv=f"{x}[r, j], " if x else "",
                          S=", S" if spread else "", row="r // S" if spread else "r")
        exec(compile(text, f"<{name}>", "exec"), glb)
        fn = glb[name]
        fn.__source__ = text   # for the syntax tree kernels/fusion.py reads
        out.append(fn)
    return tuple(out)


class _ByDtype:
    """A fill's per-cell device bodies, by the dtype of out (the joined kernel asks at its make),
    and their generated cells kernels (a fill_*_spread's own launch)."""

    def __init__(self, f32, f64):
        self.fns = {np.dtype(np.float32): f32, np.dtype(np.float64): f64}
        self.kernels = {dt: cells(fn, "out") for dt, fn in self.fns.items()}

    def body(self, dtype=np.float64):
        return device(self.fns[np.dtype(dtype)])


def _member(fill, f32, f64):
    """A fill's loop as a joined kernel's member: a cells loop over out (kernels/declare.py's
    `__loop__`), its body the float64 one (the one kernels/fusion.py reads)."""
    fill.__loop__ = _Namespace(shape="cells", body=f64, lead=("r", "j"), over="out", K=None,
                               args=tuple(inspect.signature(fill).parameters), gen=_ByDtype(f32, f64))


for _fill_fn, _draw_name, _x in ((fill_uniform, "uniform", None), (fill_normal, "normal", None),
                                 (fill_logistic, "logistic", None), (fill_gumbel, "gumbel", None),
                                 (fill_bernoulli_logit, "bernoulli_logit", "logits"),
                                 (fill_bernoulli_prob, "bernoulli_prob", "probs")):
    _member(_fill_fn, *_cell_bodies(_draw_name, _x))


def _spread(kind):
    def fill(out, seed, stream, step, row0, S):
        _is_f32(f"fill_{kind}_spread", out)
        gen = fill.__loop__.gen.kernels[np.dtype(out.dtype)]
        k = launch(gen, out.shape[0] * out.shape[1])
        if k is not None:
            k(out, seed, stream, step, row0, S)
    fill.__name__ = fill.__qualname__ = f"fill_{kind}_spread"
    fill.__module__ = __name__
    fill.__doc__ = (f"out[r, c] = fill_{kind}'s value at row row0 + r // S: a drawn row's S rows alike, as "
                    f"fill_{kind} of out's first R / S rows and rows.expand_rows(out, S) make them (the CUDA "
                    f"step's form of that pair, lowering/launches.py), a cell a thread.")
    _member(fill, *_cell_bodies(kind, None, spread=True))
    return fill


fill_uniform_spread = _spread("uniform")
fill_normal_spread = _spread("normal")
fill_logistic_spread = _spread("logistic")
fill_gumbel_spread = _spread("gumbel")


# the CPU's fills of rows narrower than a philox block (cpu/noise_narrow.py) are the same fills here
fill_uniform_narrow, fill_normal_narrow = fill_uniform, fill_normal
fill_logistic_narrow, fill_gumbel_narrow = fill_logistic, fill_gumbel

from ..cpu import noise as _cpu_twin  # noqa: E402
from ..registry import link as _link  # noqa: E402

_link("noise", _cpu_twin, globals())

