"""The CUDA target's row bookkeeping set, the twin of ``cpu/rows.py``: the CUDA twins of the
families declared once for it (``families/rows.py``, ``families/bounds.py``; ``declare.cuda_twin``
registers both targets of each kernel under its family's name), and ``flat_view`` over device
arrays. Rows are laid out r = ((i * K) + k) * S + c as on the CPU.
"""
from ..declare import cuda_twin as _cuda_twin
from ..families import bounds as _bounds
from ..families import rows as _rows
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
