"""Where a node's configurations sit in a row digit: the drawn row at local index 0 of the digit
(stride, span), configurations 1 .. size - 1 at local indices off .. off + size - 2 (a digit of the
node's own: (stride, 1, size); a digit several nodes share: each node's `off`, the rest drawn
plainly). Integer arithmetic only, for both targets (kernels/families/branches.py). And the
configurations of marginalised digits (a group of rows: its size, a member's row offset, whether
a row heads its group) and a group's weighted mean signal (the estimators' marginal signals):
helpers the families and cpu/rows.py share, named `_name` so that they are inlined into their
callers (kernels/_link.py, INLINE_HELPERS)."""
from numba import njit


@njit(cache=True, error_model="numpy", inline="always")
def slot_local(r, stride, span):
    """The local index of row r in a row digit (stride, span): 0 is the drawn (primary) row. Rows
    are never negative, so a stride of 1 and a span that is a power of two (the common digits:
    one node's pair of rows) take no integer division, the slowest op of a row kernel's loop."""
    j = r if stride == 1 else r // stride
    return j & (span - 1) if span & (span - 1) == 0 else j % span


@njit(cache=True, error_model="numpy", inline="always")
def slot_config(r, stride, off, span, size):
    """The configuration of row r for a node whose `size` configurations sit in a digit (stride,
    span) at local indices 0 (configuration 0, the drawn row) and off .. off + size - 2
    (configurations 1 .. size - 1); 0 on every other row of the digit (other nodes' rows, where
    the node is drawn plainly). A digit of its own is (stride, 1, size)."""
    j = slot_local(r, stride, span)
    return j - off + 1 if off <= j and j < off + size - 1 else 0


@njit(cache=True, error_model="numpy")
def _group_size(sizes):
    """Configurations of the marginalised digits: the product of their sizes."""
    M = 1
    for d in range(len(sizes)):
        M *= sizes[d]
    return M


@njit(cache=True, error_model="numpy")
def _group_offset(m, strides, sizes):
    """Row offset of the m-th configuration of the marginalised digits (mixed radix)."""
    off = 0
    q = m
    for d in range(len(sizes)):
        off += (q % sizes[d]) * strides[d]
        q //= sizes[d]
    return off


@njit(cache=True, error_model="numpy")
def _is_group_head(c, strides, sizes):
    """True when every marginalised digit of row (or configuration) c is 0."""
    for d in range(len(sizes)):
        if (c // strides[d]) % sizes[d] != 0:
            return False
    return True


@njit(cache=True, error_model="numpy")
def _marginal_signal(L, rw, r, strides, sizes):
    """sum rw L / sum rw over the marginalised digits of the group whose first row is r. Where
    every weight is 0 (rows of a REBAR control variate, or underflow) the plain mean, so those
    rows keep a finite value; any function of one draw is a valid baseline for the others."""
    M = _group_size(sizes)
    num = 0.0
    den = 0.0
    plain = 0.0
    for m in range(M):
        q = r + _group_offset(m, strides, sizes)
        num += float(rw[q]) * float(L[q])
        den += float(rw[q])
        plain += float(L[q])
    return num / den if den != 0.0 else plain / M
