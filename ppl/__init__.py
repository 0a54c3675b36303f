"""ppl: stochastic computation graphs compiled to one fused Numba step.

Declare a model with the DSL, compile it (the compiler picks a gradient estimator per
stochastic node and explains why), then call `loss`, `grad`, `sample`, or embed the raw
nopython entry point in your own @njit code.
"""
import os as _os
import sys as _sys

# BLAS single-threaded unless the user says otherwise: ppl's products are small and it runs its
# own threads over rows; a multi-threaded OpenBLAS competing with them was measured 35x slower
# on a 2-core machine (an SBN step at 256 rows: 29 ms instead of 0.8 ms). Only effective when
# numpy is not imported yet (as for the `ppl` command). Either way, when the user set no thread
# count, fit chooses the products' threads for its batches (ppl/training/fit.py, `_blas_threads`).
_blas_defaulted = "OPENBLAS_NUM_THREADS" not in _os.environ
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _os.environ.setdefault("MKL_NUM_THREADS", "1")

# Run from a source tree (a clone, even beside an installed copy): kernels/ and models/ sit beside
# ppl/ and install as ppl.kernels and ppl.models (pyproject.toml's package-dir), so ppl's package
# path takes the tree's root too; an installed ppl has them inside and is left as it is.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if (not _os.path.isdir(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "kernels"))
        and _os.path.isfile(_os.path.join(_root, "kernels", "__init__.py"))):
    __path__.append(_root)

from . import kernels as _kernels  # noqa: F401,E402  (first: it sends Numba's cache files of ppl to the ppl cache)
from .compiler import ahead as _ahead  # noqa: E402
_ahead.prestart()   # a first run of this version: the compile helper starts beside the rest of the import
from .kernels.native import blas as _blas  # noqa: E402
from .kernels._cache import CacheWarning  # noqa: E402
_blas.DEFAULTED = _blas_defaulted   # fit may then use every core for large products
from .dsl import (Affine, Embed, Model, ModelError, Node, bernoulli_nll, blackbox, categorical_nll, concat, const, layer,
                  gaussian_kl, gaussian_nll, log_prob, logsumexp, param, rowdot, rowsum, softmax_xent, total, minimum, maximum,
                  clip)
from .language.nodes import LAW_NODES as _LAW_NODES, OP_NODES as _OP_NODES
from .language import dist
from .language.scan import scan
from .estimators import REGISTRY as estimators
from .estimators.protocol import NO_GRAD, Estimator
from .estimators.context import EstimatorContext, Kernel, register_estimator
from .calls import KERNELS
from .runtime import diagnostics
from .training import data, optim
# `import ppl.optim`, `from ppl.data import digits`, `import ppl.dist`, `import ppl.diagnostics`: the public names of modules
# that live deeper (ppl/distributed.py too), the same module objects
for _name, _module in (("optim", optim), ("data", data), ("dist", dist), ("diagnostics", diagnostics)):
    _sys.modules.setdefault(f"{__name__}.{_name}", _module)
from .runtime.check import GradCheck, check_grad
from .training.fit import fit
from .runtime.program import Program

__version__ = "0.1.0"
globals().update(_LAW_NODES)   # ppl.Bernoulli, ppl.Normal, ...: one constructor per law (ppl/laws/)
globals().update(_OP_NODES)    # ppl.sigmoid, ppl.tanh, ...: one per elementwise op (ppl/ops.py)
from .kernels import _link as _kernel_link   # noqa: E402
_kernel_link.freeze_imported()   # what import made stays out of the collector's walks (kernels/_link.py)
__all__ = ["Model", "ModelError", "Node", "Affine", "Embed", *_LAW_NODES, "param", *_OP_NODES, "bernoulli_nll", "gaussian_nll", "softmax_xent", "categorical_nll",
           "gaussian_kl", "log_prob", "total", "blackbox", "rowsum", "logsumexp", "rowdot", "minimum", "maximum", "clip", "concat", "const", "layer", "dist", "scan",
           "estimators", "Estimator", "EstimatorContext", "Kernel", "KERNELS", "NO_GRAD", "register_estimator", "fit", "optim",
           "diagnostics", "data", "Program", "CacheWarning", "check_grad", "GradCheck"]

