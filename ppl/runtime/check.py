"""Checks of what a user gives ppl: `check_grad`, a user layer's VJP or a black box's gradient
against central differences; `checked_entry`, the raw step refusing a repeated step counter
(Program.check_steps).

    ppl.check_grad(ppl.layer(fn, [h], 3, vjp=vjp))        # a layer node: its fn, vjp and widths
    ppl.check_grad(m.nodes["sim"])                        # a black box's cost head (or ppl.blackbox(...))
    ppl.check_grad(fn, rows=[x], grad=vjp, width=3)       # the functions alone: a layer
    ppl.check_grad(cost, rows=[x], grad=cost_grad)        # a black box (no width)

The contract it checks is the one the step relies on: fn writes every entry of `out`, and the
VJP (`vjp(row_1, ..., row_n, out, gout, g_1, ..., g_n)`) or gradient (`grad(row_1, ..., row_n,
g_1, ..., g_n)`) WRITES d(gout . out) / d row_i (d cost / d row_i) into g_i. The step passes
g_i holding stale values (the previous row's or step's) and adds what the call leaves there into
the input's cotangent, so a VJP that adds into g_i (`g_i += ...`, as PyTorch's accumulation
reads) gives silently wrong gradients. Each function is therefore called twice, once with its
buffers zeroed and once filled with random values: a result that depends on the fill is refused
by name (adds into / leaves unwritten). The zero-filled result is then compared with central
differences of gout . fn (or of the cost) in float64 at every checked row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import ModelError


@dataclass
class GradCheck:
    """What check_grad found: ok, the largest |analytic - numeric| and where (input, row, column)."""
    ok: bool
    max_error: float
    tolerance: float
    worst: tuple
    message: str

    def __bool__(self):
        return self.ok


def _target(f, grad, width):
    """(label, fn, grad, width, input widths or None) of a node or of plain functions."""
    kind = getattr(f, "kind", None)
    if kind == "user_layer":
        return f"layer '{f.name}'", f.attrs["fn"], f.attrs["grad"], f.width, [x.width for x in f.inputs]
    if kind == "blackbox":
        return (f"black box '{f.attrs.get('cost_name', f.name)}'", f.attrs["fn"], f.attrs["grad"], None,
                [x.width for x in f.inputs])
    if kind is not None:
        raise ModelError(f"check_grad: '{f.name}' is a {kind} node; pass a ppl.layer node, a ppl.blackbox head or "
                         f"@njit functions")
    if not callable(f):
        raise ModelError(f"check_grad: the first argument must be a ppl.layer node, a ppl.blackbox head or an "
                         f"@njit function, got {type(f).__name__}")
    if width is not None:
        from ..validate import count
        width = count(width, "check_grad: width")
    if not hasattr(f, "py_func") or (grad is not None and not hasattr(grad, "py_func")):
        raise ModelError("check_grad: fn and grad must be numba @njit functions (as ppl.layer / ppl.blackbox take)")
    return ("layer" if width is not None else "black box"), f, grad, width, None


def _rows(rows, widths, seed, label):
    """The checked rows: a list of (n, width_i) float64 arrays, one per input."""
    if rows is None:
        if widths is None:
            raise ModelError(f"check_grad: {label}: pass rows=[row_1, ...] (one array per input) to check plain "
                             f"functions; a node's input widths are known, a function's are not")
        rng = np.random.default_rng(seed)
        return [rng.standard_normal((3, w)) for w in widths]
    rows = [rows] if isinstance(rows, np.ndarray) else list(rows)
    if widths is not None and len(rows) != len(widths):
        raise ModelError(f"check_grad: {label}: give one array per input ({len(widths)}), got {len(rows)}")
    out = []
    for i, r in enumerate(rows):
        try:
            a = np.array(r, dtype=np.float64, ndmin=1)
        except (TypeError, ValueError):
            raise ModelError(f"check_grad: {label}: rows[{i}] is not an array of numbers") from None
        a = a[None, :] if a.ndim == 1 else a
        if a.ndim != 2 or not np.all(np.isfinite(a)):
            raise ModelError(f"check_grad: {label}: rows[{i}] must be a finite 1D row or 2D array of rows, got "
                             f"shape {a.shape}" + ("" if np.all(np.isfinite(a)) else " with NaN / inf entries"))
        if widths is not None and a.shape[1] != widths[i]:
            raise ModelError(f"check_grad: {label}: rows[{i}] has {a.shape[1]} columns; input {i + 1} has width "
                             f"{widths[i]}")
        out.append(a)
    if len({a.shape[0] for a in out}) != 1:
        raise ModelError(f"check_grad: {label}: every input's array needs the same number of rows, got "
                         f"{[a.shape[0] for a in out]}")
    return out


def _call_filled(label, fname, bufs, call, shapes, rng):
    """Call `call(buffers)` with zeroed buffers, then with random ones: the zeroed result, or a
    ModelError when the result depends on what the buffers held (named `bufs`)."""
    zero = [np.zeros(s) for s in shapes]
    call(zero)
    fill = [rng.uniform(1.0, 2.0, s) for s in shapes]
    kept = [b.copy() for b in fill]
    call(fill)
    for name, z, f, k in zip(bufs, zero, fill, kept):
        if np.array_equal(z, f, equal_nan=True):
            continue
        if np.allclose(f - k, z, rtol=1e-9, atol=1e-12):
            how = "adds into"
        elif np.any((f == k) & (z == 0.0)):
            how = f"leaves entries {np.flatnonzero((f == k) & (z == 0.0)).tolist()} unwritten in"
        else:
            how = "reads what was in"
        raise ModelError(f"{label}: {fname} {how} {name}, but ppl passes {name} holding stale values (earlier rows' "
                         f"or steps') and uses what the call leaves there: {fname} must WRITE every entry of {name} "
                         f"({name}[:] = ..., or {name}[:] = 0 before adding)")
    return zero


def check_grad(f, rows=None, grad=None, width=None, *, eps=1e-6, rtol=1e-4, atol=1e-6, seed=0,
               raise_error=True) -> GradCheck:
    """Check a user layer's VJP or a black box's gradient against central differences.

    f: a ppl.layer node, a ppl.blackbox head, or the @njit function (then `grad` is its VJP or
    gradient, `width` the layer's output width; no width: a black box). rows: one array per
    input ((width,) or (n, width)) where to check; default: 3 standard normal rows per input of a
    node. A VJP / gradient that adds into its buffers instead of writing them is refused first.
    Raises a ModelError saying what is wrong (raise_error=False: returns the GradCheck)."""
    from .. import validate as V
    eps, rtol = V.real(eps, "check_grad: eps", positive=True), V.real(rtol, "check_grad: rtol", lo=0.0)
    atol, seed = V.real(atol, "check_grad: atol", positive=True), V.seed(seed, "check_grad: seed")
    label, fn, grad, width, widths = _target(f, grad, width)
    if grad is None:
        raise ModelError(f"check_grad: {label} has no gradient to check (give vjp= / grad=)")
    xs = _rows(rows, widths, seed, label)
    rng = np.random.default_rng(seed + 1)
    gname = "vjp" if width is not None else "grad"
    _check_signatures(label, fn, grad, gname, len(xs), width is not None)
    bufs = [f"g_{i + 1}" for i in range(len(xs))]
    best = None   # (normalised error, |difference|, bound, (input, row, column), analytic, numeric)
    for r in range(xs[0].shape[0]):
        x = [a[r].copy() for a in xs]
        value, gout, out = _forward(label, fn, x, width, rng)
        pre = () if width is None else (out, gout)
        g = _call_filled(label, gname, bufs, lambda b: grad(*x, *[p.copy() for p in pre], *b),
                         [a.shape for a in x], rng)
        for i, xi in enumerate(x):
            num = _central(lambda: value(x), xi, eps)
            bound = atol + rtol * np.maximum(np.abs(num), np.abs(g[i]))
            diff = np.abs(g[i] - num)
            e = np.where(diff <= bound, diff / bound, np.inf)     # NaN or over the bound: inf
            j = int(np.argmax(e))
            if best is None or e[j] > best[0]:
                best = (e[j], float(diff[j]), float(bound[j]), (i, r, j), float(g[i][j]), float(num[j]))
    e, diff, bound, worst, ana, num = best
    i, r, j = worst
    ok = bool(np.isfinite(e))
    msg = (f"{label}: gradient matches central differences (largest |difference| {diff:.3g})" if ok else
           f"{label}: {gname} gives {ana:.6g} for d/d row_{i + 1}[{j}] at checked row {r}; central differences "
           f"give {num:.6g} (|difference| {diff:.3g} > {bound:.3g})")
    if not ok and raise_error:
        raise ModelError(msg)
    return GradCheck(ok, diff, bound, worst, msg)


def _check_signatures(label, fn, grad, gname, n: int, layer: bool) -> None:
    """A ModelError naming the function and the arguments it must take when fn or grad cannot
    take the call check_grad makes (else a raw TypeError from inside Numba)."""
    import inspect
    rows = [f"row_{i + 1}" for i in range(n)]
    grads = [f"g_{i + 1}" for i in range(n)]
    want = {"fn": rows + (["out"] if layer else []),
            gname: rows + (["out", "gout"] if layer else []) + grads}
    for name, f in (("fn", fn), (gname, grad)):
        try:
            sig = inspect.signature(getattr(f, "py_func", f))
        except (TypeError, ValueError):
            continue
        try:
            sig.bind(*want[name])
        except TypeError:
            raise ModelError(f"check_grad: {label}: {name}{sig} cannot take the {len(want[name])} argument(s) "
                             f"({', '.join(want[name])}) of {n} input(s); write {name}({', '.join(want[name])})") from None


def _forward(label, fn, x, width, rng):
    """(value(x) -> float, gout, out): the scalar whose gradient the VJP / grad gives, checked to
    be finite and (a layer) written by fn whatever `out` held."""
    if width is None:
        def value(xx):
            return float(fn(*xx))
        gout = out = None
    else:
        gout = rng.standard_normal(width)
        out = _call_filled(label, "fn", ["out"], lambda b: fn(*x, b[0]), [(width,)], rng)[0]

        def value(xx):
            o = np.zeros(width)
            fn(*xx, o)
            return float(gout @ o)
    v = value(x)
    if not np.isfinite(v):
        raise ModelError(f"check_grad: {label} is not finite ({v}) at the checked rows; pass rows= inside its domain")
    return value, gout, out


def _central(value, xi, eps):
    """d value / d xi by central differences (step eps * max(1, |x|)), xi perturbed in place."""
    out = np.empty_like(xi)
    for j in range(xi.shape[0]):
        h = eps * max(1.0, abs(xi[j]))
        x0 = xi[j]
        xi[j] = x0 + h
        up = value()
        xi[j] = x0 - h
        down = value()
        xi[j] = x0
        out[j] = (up - down) / (2 * h)
    return out


# --------------------------------------------------------------------------- the step counter
GUARD_SLOTS = 9   # set?, the seed and the step counter t, each as four 16-bit chunks (exact in float32)


@njit(cache=True)
def _put(a, i, v):
    for k in range(4):
        a[i + k] = (v >> (16 * k)) & 0xFFFF


@njit(cache=True)
def _get(a, i):
    v = np.int64(0)
    for k in range(4):
        v |= np.int64(a[i + k]) << (16 * k)
    return v


@njit(cache=True)
def check_counter(guard, seed, t):
    """Refuse a gradient step whose step counter t does not increase under the same seed (its
    noise would repeat a previous step's); record (seed, t) in `guard`."""
    s, tt = np.int64(seed), np.int64(t)
    if guard[0] != 0 and _get(guard, 1) == s and tt <= _get(guard, 5):
        raise ModelError("check_steps: the step counter t=" + str(tt) + " does not increase (the previous gradient "
                         "step under seed " + str(s) + " had t=" + str(_get(guard, 5)) + "): every draw is a "
                         "function of (seed, stream, row, column, t), so a repeated t repeats that step's noise; "
                         "pass t = the iteration number (prog.grad(..., step=i))")
    guard[0] = 1
    _put(guard, 1, s)
    _put(guard, 5, tt)


def checked_entry(step):
    """The step `step` behind a guard: it takes the same arguments, its ws1 ending with the guard
    array (Program.args in check_steps mode appends it), and refuses a gradient step (mode != 0)
    whose step counter t does not increase under one seed."""
    @njit
    def entry(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode):
        if mode != 0:
            check_counter(ws1[-1], seed, t)
        return step(theta, grad, state, ws2, ws1[:-1], inputs, B, seed, t, mode)
    return entry
