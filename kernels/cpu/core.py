"""The CPU target's kernel set: every kernel the generated step calls, as ``core.<name>`` with
``core`` this module, bound here under its name from the families declared once
(``kernels/families/``: the layers, activations and elementwise ops, the optimisers, LAX, the
distributions, closed-form KL and cost heads, the estimators' kernels, ...).

The conventions are a contract with the code generator, and every kernel module follows them
(the calls come in topological order forward and reverse order backward, inside one fused
nopython step):

* Node values are 2D C-contiguous ``(R, D)`` arrays (R = batch * samples); per-row
  quantities (costs, log-probs) are 1D ``(R,)``; ``W`` is ``(I, O)``, ``b`` is ``(O,)``.
* Hyper-parameters (temperature ``tau``, learning rate, ...) are 1-element 1D arrays, so a
  learnable one can be a view into the parameter vector; a plain float is accepted too.
* Forward kernels overwrite their outputs. Backward kernels accumulate (``+=``) into every
  gradient they receive; a gradient passed with ``shape[0] == 0`` is skipped.
* No allocation of results: the BLAS products (``blas.gemm``) write into their outputs, the
  gradients accumulating in place (beta = 1); a kernel's scratch is its own (the log-space
  products' blocks of rows, LAX's and REBAR's per-row work).
* dtype-generic: all arrays of one call share float32 or float64; constants are cast to it
  with ``like`` (see ``math/scalar.py``), so float32 math stays float32.
* ``error_model="numpy"``: a division by zero gives inf/nan instead of raising, and the
  division loops stay free of per-element Python-exception checks (so they vectorise).
* Elementwise loops vectorise only without libm calls (scalar.fexp & co.) and, for their row
  sums, with reassociation allowed; "contract" lets LLVM fuse multiply-adds. No other fast-math
  flag: NaN and inf keep their meaning.

Every per-element formula is a named function of ``math/scalar.py`` (the softmax kernels call
the per-group helpers of ``math/groups.py``), shared with the CUDA twin ``cuda/core.py``.
"""
from .. import families as _families
from ..declare import exported as _exported
from ..declare import narrow_twins as _narrow_twins

for _family in _families.modules():   # the families declared once (kernels/families/)
    globals().update(_exported(_family))
__getattr__ = _narrow_twins(globals())   # <kernel>_col1: its one-column twin (declare.narrow)
