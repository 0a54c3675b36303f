"""The CPU target's row bookkeeping set (the step calls it as ``rows.<name>``): the kernels of
the families declared once for it (``families/rows.py``: tiling rows, row weights, baselines,
enumeration digits, scalar affine maps, constants and column maps; ``families/bounds.py``: the
importance-weighted bound), and the step's parameter and state views (``flat_view``) and a
buffer's cells as one row (``as_row``), which no device shares.
"""
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from ..declare import exported as _exported
from ..declare import narrow_twins as _narrow_twins
from ..families import bounds as _bounds
from ..families import rows as _rows

globals().update(_exported(_rows))
globals().update(_exported(_bounds))
__getattr__ = _narrow_twins(globals())   # <kernel>_col1: its one-column twin (declare.narrow)


@intrinsic
def flat_view(typingctx, a, off, shape):
    """a[off:off + prod(shape)].reshape(shape) of a C-contiguous 1-D array, without bounds
    checks and without an owner: a step's parameter and state views (offsets from the program's
    layout; the step checks the arrays' lengths once, first). Numba's slice and reshape cost
    ~15 ms of compile per view and a reference count per use."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"):
        raise TypingError(f"flat_view: a C-contiguous 1-D array is needed, got {a}")
    if not (isinstance(off, types.Integer) and isinstance(shape, types.UniTuple)
            and isinstance(shape.dtype, types.Integer)):
        raise TypingError(f"flat_view: an integer offset and a tuple of integers are needed, got {off}, {shape}")
    ret = types.Array(a.dtype, shape.count, "C")

    def codegen(context, builder, sig, args):
        aty, offty, shty = sig.args
        src = make_array(aty)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(aty.dtype)))
        shape = [context.cast(builder, v, shty.dtype, types.intp) for v in cgutils.unpack_tuple(builder, args[2])]
        strides, acc = [], itemsize
        for s in reversed(shape):
            strides.insert(0, acc)
            acc = builder.mul(acc, s)
        data = builder.gep(src.data, [context.cast(builder, args[1], offty, types.intp)])
        out = make_array(sig.return_type)(context, builder)
        populate_array(out, data=data, shape=cgutils.pack_array(builder, shape, intp),
                       strides=cgutils.pack_array(builder, strides, intp), itemsize=itemsize,
                       meminfo=cgutils.get_null_value(src.meminfo.type), parent=None)
        return out._getvalue()

    return ret(a, off, shape), codegen


def _flat_view_python(a, off, shape):
    """flat_view in Python: a step run by the interpreter before it is compiled
    (ppl/runtime/first_steps.py)."""
    n = 1
    for s in shape:
        n *= s
    return a[off:off + n].reshape(shape)


flat_view.python = _flat_view_python


@intrinsic
def as_row(typingctx, a):
    """A C-contiguous 2-D array's cells as one row, (R, W) as (1, R * W), without an owner: a
    workspace buffer of one column passed to a kernel that reads each array at its own cell
    (kernels/one_row.py; pass "narrow cells"), without the call Numba's reshape makes per use."""
    if not (isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"):
        raise TypingError(f"as_row: a C-contiguous 2-D array is needed, got {a}")

    def codegen(context, builder, sig, args):
        # the argument's own struct with its owner dropped and its shape and strides replaced
        intp = context.get_value_type(types.intp)
        v = args[0]
        n = builder.mul(builder.extract_value(v, [5, 0]), builder.extract_value(v, [5, 1]))
        itemsize = builder.extract_value(v, 3)
        for at, x in (([0], cgutils.get_null_value(v.type.elements[0])), ([1], cgutils.get_null_value(v.type.elements[1])),
                      ([5, 0], intp(1)), ([5, 1], n), ([6, 0], builder.mul(n, itemsize)), ([6, 1], itemsize)):
            v = builder.insert_value(v, x, at)
        return v

    return a(a), codegen


def _as_row_python(a):
    """as_row in Python: a step run by the interpreter before it is compiled
    (ppl/runtime/first_steps.py)."""
    return a.reshape(1, a.shape[0] * a.shape[1])


as_row.python = _as_row_python
