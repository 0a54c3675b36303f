"""The kernel registry: every array kernel declared once, with an implementation per target.

A kernel is named by its family (the CPU module's suffix: ``noise`` for cpu/noise.py / cuda/noise.py, a family's file name for ``families/``, ...) and its public name. The registry records,
per kernel, the implementation of each target (``"cpu"``: the ``@njit`` kernel of the
``cpu/*.py`` module, untouched, so its machine code is the same; ``"cuda"``: the host launcher of
the ``cuda/*.py`` twin), the loop shape and scalar functions its CUDA side was generated from,
and optionally an argument maker for the CPU / CUDA parity test.

CUDA kernels of the common loop shapes are GENERATED from a per-item body (a plain Python
function over indices and arrays, or an ``@njit`` one, re-jitted by ``device()``):

* ``cells(body)``: one thread per (r, j) cell of an array argument, ``body(r, j, *args)``;
  ``groups(body)``: one thread per (row, group of K columns), ``body(r, g, *args)``;
  ``rows(body)``: the lanes of a warp per row of an array argument, ``body(r, *args)``
  rewritten by kernels/lanes.py (one thread per row where the body has no lanes form);
  ``items(body)``: one thread per item of a count given at launch, ``body(i, *args)``;
  ``block(body)``: ONE block sums ``body(i, *args)`` over a count in float64 (deterministic
  ``block_sum``) and returns the total to the host.

Each maker returns a ``Generated`` kernel: call it with its launch extent first (the array whose
cells, or the count of items) and the kernel's arguments. Kernels that do not fit a shape
(products, noise fills, REBAR / RELAX rows with local work vectors, ...) stay hand-written and
are registered as such: ``register(family, name, "cuda", impl)``, as JAX registers a lowering
per platform. ``link(family, cpu_module, gpu_namespace)`` (called at the end of each ``cuda/*.py``)
records every public kernel of both modules, with the shapes of the generated kernels each
launcher uses (``@uses(...)``). ``targets(family, name)`` answers which targets a kernel has.

Nothing here imports ``ppl`` or ``numba.cuda``; nothing is compiled at import (``cuda.jit`` is lazy).
"""
import inspect
import types
import numpy as np
from numba.core.registry import CPUDispatcher

from .cuda.device import device, source_of
from .math.scalar import hyper, like

TARGETS = ("cpu", "cuda")


class Kernel:
    """One registered kernel: its implementations per target and how the CUDA one was made."""

    def __init__(self, family, name):
        self.family, self.name = family, name
        self.impls = {}
        self.shapes = ()     # the loop shapes of its generated CUDA kernels; () when hand-written
        self.scalars = ()    # the scalar functions / bodies they were generated from
        self.args = None     # argument maker for the parity test: args(gen) -> arguments

    @property
    def generated(self):
        return bool(self.shapes)

    def __repr__(self):
        return (f"Kernel({self.family}.{self.name}, targets={sorted(self.impls)}, "
                f"shapes={list(self.shapes) or 'hand-written'})")


_KERNELS = {}      # (family, name) -> Kernel
_INCLUDES = {}     # family -> families re-exported through its module (cuda/core.py re-exports optim, ...)


def _kernel(family, name):
    k = _KERNELS.get((family, name))
    if k is None:
        k = _KERNELS[family, name] = Kernel(family, name)
    return k


def register(family, name, target, impl, shapes=(), scalars=()):
    """Record ``impl`` as the ``target`` implementation of kernel ``family.name``."""
    if target not in TARGETS:
        raise ValueError(f"register: target must be one of {TARGETS}, got {target!r}")
    k = _kernel(family, name)
    k.impls[target] = impl
    if target == "cuda":
        k.shapes, k.scalars = tuple(shapes), tuple(scalars)
    return impl


def include(family, *subfamilies):
    """The module of ``family`` re-exports the kernels of ``subfamilies`` (one alias calls them all)."""
    _INCLUDES.setdefault(family, [])
    for s in subfamilies:
        if s not in _INCLUDES[family]:
            _INCLUDES[family].append(s)


def lookup(family, name):
    """The Kernel ``name`` of ``family`` or of a family its module re-exports (None if unknown)."""
    k = _KERNELS.get((family, name))
    if k is not None:
        return k
    for s in _INCLUDES.get(family, ()):
        k = lookup(s, name)
        if k is not None:
            return k
    return None


def targets(family, name):
    """The targets kernel ``name`` of ``family`` has (an empty set if it is unknown)."""
    k = lookup(family, name)
    return set(k.impls) if k is not None else set()


def kernels(family=None):
    """Every registered kernel (of one family), sorted by (family, name)."""
    return [k for key, k in sorted(_KERNELS.items()) if family is None or key[0] == family]


def args(family, name, maker):
    """Declare the argument maker of a kernel for the CPU / CUDA parity test."""
    _kernel(family, name).args = maker


def uses(*generated):
    """Decorator of a CUDA host launcher: it launches these generated kernels (read by ``link``)."""
    def mark(fn):
        fn.__kernels__ = generated
        return fn
    return mark


def _public(namespace, module_name):
    for name, f in list(namespace.items()):
        if name.startswith("_") or not callable(f) or isinstance(f, type):
            continue
        owner = f.py_func.__module__ if isinstance(f, CPUDispatcher) else getattr(f, "__module__", None)
        if owner == module_name:
            yield name, f


def link(family, cpu_module, gpu_namespace):
    """Register the public kernels of ``cpu_module`` as family's CPU implementations and the
    public functions ``gpu_namespace`` (a cuda/*.py module's globals) defines as its CUDA ones,
    with the shapes and scalar functions of the generated kernels each launcher uses."""
    if cpu_module is not None:
        for name, f in _public(vars(cpu_module), cpu_module.__name__):
            register(family, name, "cpu", f)
    for name, f in _public(gpu_namespace, gpu_namespace["__name__"]):
        gens = getattr(f, "__kernels__", None)
        if gens is None:   # the generated kernels the launcher names
            code = getattr(f, "__code__", None)
            gens = [g for g in (gpu_namespace.get(n) for n in (code.co_names if code else ()))
                    if isinstance(g, Generated)]
        register(family, name, "cuda", f, shapes=[g.shape for g in gens],
                 scalars=[g.fn for g in gens])


# ============================================================================ generation

class Generated:
    """A CUDA kernel generated from a loop shape and a per-item body. It is configured and
    launched as the kernel it wraps (``g[blocks, threads](*args)``, so ``native/launch.py``'s
    ``launch`` / ``run`` / ``single_block`` take it); its arguments are the body's (after the
    index arguments)."""

    def __init__(self, shape, fn, src):
        py = isinstance(fn, (CPUDispatcher, types.FunctionType))
        self._dev = None if py else fn       # fn: an @njit / Python function, or its device twin
        self.shape, self.fn, self.src = shape, fn if py else source_of(fn), src
        self._kernel = None

    @property
    def kernel(self):
        """The cuda.jit kernel (made at first use, when the body's module is fully imported)."""
        if self._kernel is None:
            from numba import cuda
            from .native.launch import block_sum
            glb = {"cuda": cuda, "f": Generated.body(self), "like": like, "hyper": hyper, "block_sum": block_sum,
                   "np": np}
            name = getattr(self.fn, "__name__", "f")
            exec(compile(self.src, f"<generated {self.shape} kernel of {name}>", "exec"), glb)
            glb["k"].__name__ = f"{self.shape}_{name.lstrip('_')}"
            self._kernel = cuda.jit(glb["k"])   # lazy as well: compiled at the first launch
        return self._kernel

    def body(self, dtype=None):
        """The device function its kernel calls per item (a row body's lanes form where it has one;
        one for every dtype)."""
        return self._dev if self._dev is not None else device(self.fn)

    def __getitem__(self, config):
        return self.kernel[config]

    def __repr__(self):
        return f"Generated({self.shape}, {getattr(self.fn, '__name__', self.fn)!r})"


def _params(fn, lead):
    py = fn.py_func if isinstance(fn, CPUDispatcher) else getattr(fn, "py_func", fn)
    params = list(inspect.signature(py).parameters)
    if len(params) < lead:
        raise TypeError(f"registry: {py.__name__} must take {lead} index argument(s) first")
    return ", ".join(params[lead:])


_CELL_LOOP = ("    R, D = {o}.shape\n"
              "    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):\n"
              "        r = i // D\n"
              "        j = i - r * D\n")


def cells(body, over):
    """One thread per (r, j) cell of the argument named ``over``: body(r, j, *args)."""
    p = _params(body, 2)
    return Generated("cells", body, f"def k({p}):\n" + _CELL_LOOP.format(o=over) + f"        f(r, j, {p})\n")


def groups(body, over, K="K"):
    """One thread per (row r, group g of K columns) of the argument ``over``: body(r, g, *args)."""
    p = _params(body, 2)
    return Generated("groups", body, f"def k({p}):\n"
                     f"    R, D = {over}.shape\n"
                     f"    G = D // {K}\n"
                     f"    for i in range(cuda.grid(1), R * G, cuda.gridsize(1)):\n"
                     f"        r = i // G\n"
                     f"        f(r, i - r * G, {p})\n")


def items(body, n):
    """One thread per item i < n (``n`` an expression over the arguments, e.g. "out.shape[0]"):
    body(i, *args)."""
    p = _params(body, 1)
    return Generated("items", body, f"def k({p}):\n"
                     f"    for i in range(cuda.grid(1), {n}, cuda.gridsize(1)):\n"
                     f"        f(i, {p})\n")


class Rows(Generated):
    """A row body's kernel: ``W_`` lanes per row (its first argument; ``lanes`` picks it per
    launch: a warp, or a block for few wide rows; kernels/lanes.py) where the body has a lanes
    form, else one thread per row (``why`` says why not). The form is settled at the first use,
    when the body's module is fully imported."""

    def __init__(self, body, over):
        super().__init__("rows", body, None)
        self.over, self._formed, self.why = over, None, None

    def _form(self):
        if self._formed is None:
            from . import lanes
            from .native import launch as L
            helpers = {n: getattr(L, n) for n in ("lanes_sum", "lanes_any", "lanes_all", "lanes_sync")}
            p = _params(self.fn, 1)
            try:
                form = lanes.lane_body(self.fn, helpers)
            except lanes.NoLaneForm as exc:   # a thread per row
                self.why, self._formed = str(exc), False
                self.src = (f"def k(W_, {p}):\n"
                            f"    for i in range(cuda.grid(1), {self.over}.shape[0], cuda.gridsize(1)):\n"
                            f"        f(i, {p})\n")
            else:
                self._dev, self._formed = device(form), True
                self.src = (f"def k(W_, {p}):\n"
                            f"    for i in range(cuda.grid(1), {self.over}.shape[0] * W_, cuda.gridsize(1)):\n"
                            f"        f(i // W_, i % W_, W_, {p})\n")
        return self._formed

    def body(self, dtype=None):
        self._form()
        return Generated.body(self)

    @property
    def formed(self):
        """Whether the body has a lanes form (else a thread per row: ``why`` says why)."""
        return self._form()

    def lanes(self, over):
        """The lanes a launch over the rows of ``over`` gives each row (1: a thread per row)."""
        if not self._form():
            return 1
        from .native.launch import row_lanes
        return row_lanes(over.shape[0], over.shape[1] if len(over.shape) == 2 else 0)

    @property
    def kernel(self):
        self._form()   # the form first: it sets the source and the device body
        return Generated.kernel.fget(self)


def rows(body, over):
    """``W_`` lanes per row r of the argument ``over`` where the body has a lanes form, else one
    thread per row: body(r, *args); the kernel's arguments (W_, *args)."""
    return Rows(body, over)


def _summed(shape, body, over, write):
    """A kernel summing body(i, *args) over i in range(`over`) in float64 (each thread's share,
    then a deterministic ``block_sum``), thread 0 then running `write` (of total and the
    arguments); arguments (*args, res)."""
    p = _params(body, 1)
    return Generated(shape, body, f"def k({p}, res):\n"
                     f"    s = 0.0\n"
                     f"    for i in range({over}):\n"
                     f"        s += f(i, {p})\n"
                     f"    total = block_sum(s)\n"
                     f"    if cuda.threadIdx.x == 0:\n"
                     f"        {write}\n")


def counted(body, n):
    """A grid-stride loop over i < n (launch with ``launch_counted``): each block's float64 sum of
    body(i, *args) (a count: whole numbers) added to res[0] by one atomic add where it is not 0,
    exact in any order below 2^53, so the count is the same on every run; arguments (*args, res)."""
    return _summed("counted", body, f"cuda.grid(1), {n}, cuda.gridsize(1)",
                   "if total != 0.0: cuda.atomic.add(res, 0, total)")


def block(body, n, result="total"):
    """ONE block (launch with ``gpu_core.single_block``): total = the float64 sum over i < n of
    body(i, *args) (a deterministic ``block_sum``; body may write outputs of its own); thread 0
    writes ``result`` (an expression of total and the arguments, ``like`` and ``hyper`` at hand;
    ``res[0] + ...`` accumulates) to res[0]; arguments (*args, res)."""
    return _summed("block", body, f"cuda.threadIdx.x, {n}, cuda.blockDim.x", f"res[0] = {result}")
