"""An array's cells as one flat view, from compiled code, without the call Numba's `reshape`
makes: `a.reshape(a.size)` compiles Numba's shape normalising function once per process and per
set of compile options, and adds a call to its no-copy check at each use (docs/benchmarks/
compile-and-cold-start.md, "Flat views without Numba's reshape")."""
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def flat_cells(typingctx, a):
    """The cells of a contiguous array in C order as a 1-D array of the same data (`a.reshape(a.size)`),
    owned as `a` is. An array not typed C-contiguous (layout "A" or "F") must be so where this
    runs: its caller tests that first (`a.flags.c_contiguous`; the noise fills' flat path runs
    only for an array typed C, cpu/noise.py's `_flat_ok`)."""
    if not isinstance(a, types.Array):
        raise TypingError(f"flat_cells: an array is needed, got {a}")
    ret = types.Array(a.dtype, 1, "C", readonly=not a.mutable, aligned=a.aligned)

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        src = make_array(aty)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        out = make_array(sig.return_type)(context, builder)
        populate_array(out, data=src.data, shape=cgutils.pack_array(builder, [src.nitems], intp),
                       strides=cgutils.pack_array(builder, [src.itemsize], intp), itemsize=src.itemsize,
                       meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, sig.return_type, out._getvalue())

    return ret(a), codegen


def _flat_cells_python(a):
    """flat_cells in Python (a step run by the interpreter before it is compiled)."""
    return a.reshape(a.size)


flat_cells.python = _flat_cells_python
