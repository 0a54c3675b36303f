"""The CUDA target's row bookkeeping set, the twin of ``cpu/rows.py``: the CUDA twins of the
families declared once for it (``families/rows.py``, ``families/bounds.py``; ``declare.cuda_twin``
registers both targets of each kernel under its family's name), and ``flat_view`` over device
arrays. Rows are laid out r = ((i * K) + k) * S + c as on the CPU.
"""
from numba import cuda as _cuda

from ..declare import cuda_twin as _cuda_twin
from .fused import fused, stepped  # noqa: F401  (kernels over the same rows, a loop block: one launch)
from .products import column_sums_all  # noqa: F401  (the backward's column sums: one launch)
from ..families import bounds as _bounds
from ..families import rows as _rows
from ..native.launch import block_sum as _block_sum
from ..native.launch import run as _run
from ..native.launch import single_block as _single_block
from .device import device as _device
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


_TOTALS = {}   # the number of costs -> the kernel of weighted_totals_into


def weighted_totals_into(rw, acc, sink, *costs_and_words):
    """weighted_total_into of several costs of the same rows (cost, sink word, cost, word, ...)
    in ONE block: per row, acc += each cost in order, and each weighted sum added to its word of
    sink, by the same block_sum as one call each (so the same bits); a run of the CUDA step's loss
    terms (lowering/printer.py joins them), one launch instead of one per cost."""
    costs, words = costs_and_words[0::2], costs_and_words[1::2]
    k = len(costs)
    if k not in _TOTALS:
        _TOTALS[k] = _totals_kernel(k)
    _single_block(_TOTALS[k], costs[0].shape[0])(rw, acc, sink, *costs, *words)


def _totals_kernel(k):
    from ..families.rows import _weighted_total_item
    cs, ks = [f"c{i}" for i in range(k)], [f"k{i}" for i in range(k)]
    lines = [f"def weighted_totals_into(rw, acc, sink, {', '.join(cs + ks)}):",
             *(f"    s{i} = 0.0" for i in range(k)),
             "    for r in range(cuda.threadIdx.x, c0.shape[0], cuda.blockDim.x):",
             *(f"        s{i} += f(r, rw, c{i}, acc)" for i in range(k))]
    for i in range(k):
        lines += [f"    t{i} = block_sum(s{i})", "    if cuda.threadIdx.x == 0:", f"        sink[k{i}] = sink[k{i}] + t{i}"]
    glb = {"cuda": _cuda, "block_sum": _block_sum, "f": _device(_weighted_total_item)}
    exec(compile("\n".join(lines) + "\n", "<generated weighted_totals_into kernel>", "exec"), glb)
    return _cuda.jit(glb["weighted_totals_into"])
