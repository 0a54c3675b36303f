"""One scalar source, two targets: ``device(fn)`` re-jits an ``@njit`` function for CUDA.

``device(fn)`` takes the Python body ``fn.py_func`` (the very source the CPU kernels run),
clones it as a new function whose globals are a copy of its module's globals in which every
name bound to another numba dispatcher is replaced by ``device(<that dispatcher>)``
(memoised, recursive), and returns ``cuda.jit(device=True)`` of the clone. The CPU function
is untouched; the clone calls device versions of exactly the helpers the CPU version calls.
Helpers must therefore be called by their global name (``sigmoid(x)``, not
``scalar.sigmoid(x)``). ``like`` and ``hyper`` (``scalar.py``) are ``overload``s for the
generic target, so compiled CUDA code gets the same casts as the CPU; the CUDA simulator
runs their pure-Python bodies, which cast the same way.

A function whose device form must differ from its CPU source has a hand-written twin here:
``add_word`` (kernels/math/words.py) adds atomically on the device, where rows run at once.

Nothing is compiled here: ``cuda.jit`` is lazy, so importing a module that calls ``device``
needs neither a GPU nor the simulator; ``numba.cuda`` itself is imported at the first ``device``
call (a CUDA target asked for), not with ppl.
"""
import dis
import types

from numba.core.registry import CPUDispatcher

from ..math.words import add_word as _add_word

_DEVICE = {}
cuda = None   # numba.cuda, bound at the first device() call (_cuda)


def _add_word_atomic(a, k, v):
    cuda.atomic.add(a, k, v)


def _cuda():
    """numba.cuda, imported at the first use, with the atomic twin of add_word (a module global
    name, as every device body reads it: the simulator swaps it for its own)."""
    global cuda
    if cuda is None:
        from numba import cuda as module
        cuda = module
        _DEVICE[_add_word] = cuda.jit(device=True)(_add_word_atomic)
    return cuda


def _global_names(code):
    """Names a code object (and the code objects nested in it) loads as globals."""
    names = {ins.argval for ins in dis.get_instructions(code)
             if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def device(fn):
    """The CUDA device function compiled from the source of the ``@njit`` dispatcher ``fn``, or
    of a plain Python function (a kernel registry's per-cell / per-row body, ``registry.py``)."""
    _cuda()
    dev = _DEVICE.get(fn)
    if dev is not None:
        return dev
    if isinstance(fn, CPUDispatcher):
        py = fn.py_func
    elif isinstance(fn, types.FunctionType):
        py = fn
    else:
        raise TypeError(f"device(): {fn!r} is not an @njit function; decorate it with @njit")
    glb = dict(py.__globals__)
    for name in _global_names(py.__code__):
        value = glb.get(name)
        if isinstance(value, CPUDispatcher) and value is not fn:
            glb[name] = device(value)
    clone = types.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, py.__closure__)
    clone.__qualname__ = py.__qualname__
    clone.__doc__ = py.__doc__
    clone.__module__ = py.__module__
    dev = cuda.jit(device=True)(clone)
    _DEVICE[fn] = dev
    return dev


def source_of(dev):
    """The function ``device()`` made the device function ``dev`` from (``dev`` if none)."""
    for fn, d in _DEVICE.items():
        if d is dev:
            return fn
    return dev
