"""Where a node's configurations sit in a row digit: the drawn row at local index 0 of the digit
(stride, span), configurations 1 .. size - 1 at local indices off .. off + size - 2 (a digit of the
node's own: (stride, 1, size); a digit several nodes share: each node's `off`, the rest drawn
plainly). Integer arithmetic only, for both targets (kernels/families/branches.py)."""
from numba import njit


@njit(cache=True, error_model="numpy", inline="always")
def slot_local(r, stride, span):
    """The local index of row r in a row digit (stride, span): 0 is the drawn (primary) row."""
    return (r // stride) % span


@njit(cache=True, error_model="numpy", inline="always")
def slot_config(r, stride, off, span, size):
    """The configuration of row r for a node whose `size` configurations sit in a digit (stride,
    span) at local indices 0 (configuration 0, the drawn row) and off .. off + size - 2
    (configurations 1 .. size - 1); 0 on every other row of the digit (other nodes' rows, where
    the node is drawn plainly). A digit of its own is (stride, 1, size)."""
    j = (r // stride) % span
    return j - off + 1 if off <= j and j < off + size - 1 else 0
