"""The natural logarithm as an elementwise op, ppl.log(x): one file declares the op (its scalar
function and derivative; kernels/declare.unary makes its kernels, its op-table entry and its DSL
constructor from them). log(x) is NaN for x < 0 and -inf at 0: the value is not clipped, and a
NaN reaching a step's cost is reported by fit's finite check."""
import math

from numba import njit

from ..declare import unary
from ..math.scalar import like


@njit(cache=True, error_model="numpy")
def _log(x):
    """log(x) (NaN below 0)."""
    return like(x, math.log(x)) if x > 0 else (like(x, -math.inf) if x == 0 else like(x, math.nan))


@njit(cache=True, error_model="numpy")
def _log_grad(x):
    """d log(x) / dx = 1 / x."""
    return like(x, 1.0) / x


@njit(cache=True, error_model="numpy")
def _log_grad2(x):
    """d^2 log(x) / dx^2 = -1 / x^2."""
    return like(x, -1.0) / (x * x)


OP = unary("log", _log, _log_grad, "Elementwise natural logarithm (inputs > 0).", domain="positive", d2f=_log_grad2)
