"""The CUDA target's kernel set, the twin of ``cpu/core.py``: the same public names and arguments,
as host-side launchers over numba CUDA device arrays (the generated step binds ``core`` to this
module). Each is the CUDA twin of a family declared once (``kernels/families/``,
``declare.cuda_twin``), which registers both targets of every kernel in the registry under its
family's name; the registry's ``core`` includes them all.

Every per-element formula is a ``math/scalar.py`` function re-jitted for the device by
``device()`` (``kernels/cuda/device.py``). Conventions are cpu/core.py's.

Parallel layout (grid-stride loops, block size from ``native/config.py``):
* elementwise kernels: one thread per (r, j);
* per-row sums (log-probs, costs): one thread per row, summing j in the CPU's order, so
  they give the CPU's bits whenever the scalar functions do;
* softmax-group kernels: one thread per (row, group), running the math/groups.py helper;
* affine products: one thread per output element (inner loop over the shared index);
  column sums (bias, broadcast) one thread per column, rows in order;
* a tau gradient (a sum over all elements) is reduced in ONE block (``block_sum``), so it
  is deterministic; without a tau gradient the same kernel runs on the full grid.
"""
from .. import families as _families
from ..declare import cuda_twin as _cuda_twin
from ..registry import include as _include

_FAMILIES = {}   # family -> {name: CUDA launcher} of the families declared once (kernels/families/)
for _family in _families.modules():   # cuda_twin registers both targets of each kernel
    _fam = _family.__name__.rsplit(".", 1)[1]
    _FAMILIES[_fam] = _cuda_twin(_family)
    globals().update(_FAMILIES[_fam])

_include("core", *_FAMILIES)
