"""The CUDA target's row bookkeeping set, the twin of ``cpu/rows.py``: the CUDA twins of the
families declared once for it (``families/rows.py``, ``families/bounds.py``; ``declare.cuda_twin``
registers both targets of each kernel under its family's name), and ``flat_view`` over device
arrays. Rows are laid out r = ((i * K) + k) * S + c as on the CPU.
"""
from numba import cuda as _cuda

from ..declare import cuda_twin as _cuda_twin
from ..families import bounds as _bounds
from ..families import rows as _rows
from ..native.launch import run as _run
from ..registry import include as _include

globals().update(_cuda_twin(_rows))
globals().update(_cuda_twin(_bounds))
_include("rows", "bounds")


def flat_view(a, off, shape):
    """cpu/rows.flat_view's twin: a[off:off + prod(shape)] of a device array, reshaped."""
    n = 1
    for s in shape:
        n *= s
    return a[off:off + n].reshape(shape)


_ZERO_ALL = {}   # the arrays' dimensions -> the kernel zeroing such arrays


def zero_all(*arrays):
    """Every array (1D or 2D) set to 0 by ONE launch: a run of zero1 / zero2 calls of the CUDA step
    (lowering/printer.py joins them), one node of a captured step instead of one per buffer."""
    key = tuple(a.ndim for a in arrays)
    if key not in _ZERO_ALL:
        _ZERO_ALL[key] = _zero_all_kernel(key)
    _run(_ZERO_ALL[key], max(a.size for a in arrays), *arrays)


def _zero_all_kernel(ndims):
    """A grid-stride kernel over arrays of these dimensions, each zeroed over its own size."""
    lines = [f"def zero_all({', '.join(f'a{i}' for i in range(len(ndims)))}):",
             "    start, step = cuda.grid(1), cuda.gridsize(1)"]
    for i, nd in enumerate(ndims):
        if nd == 1:
            lines += [f"    for e in range(start, a{i}.shape[0], step):", f"        a{i}[e] = 0"]
        else:
            lines += [f"    w = a{i}.shape[1]", f"    for e in range(start, a{i}.shape[0] * w, step):",
                      f"        a{i}[e // w, e - (e // w) * w] = 0"]
    glb = {"cuda": _cuda}
    exec(compile("\n".join(lines) + "\n", "<generated zero_all kernel>", "exec"), glb)
    return _cuda.jit(glb["zero_all"])
