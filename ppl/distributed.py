"""`import ppl.distributed`: ppl.training.distributed (sweeps over estimators and seeds, data-
parallel fit, gradient moments on Dask) under its public name, the same module object."""
import sys

from .training import distributed as _distributed

sys.modules[__name__] = _distributed
