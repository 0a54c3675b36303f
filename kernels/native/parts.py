"""ppl's own threads: in how many parts the CPU kernels split their large work (a matrix product,
Adam's update), the parts run at once on Numba's threads.

One process-wide count, 1 (no split) unless set: `fit` sets it for its run when it gives a
paper-scale model a second core (ppl/training/threads.py), and a user's own loop may set it
(`part_kernels.use`). The compiled kernels read it at each call from an external global bound by name,
as the products' BLAS is (kernels/native/blas.py), so cached code reads the running process's value.

The parallel kernels themselves (kernels/cpu/part_kernels.py) are compiled only when a process
first asks for parts of a dtype (`part_kernels.use(n, dtypes)`), not with every step: a kernel calls
them through a table of addresses (the global `ppl_part_fns`, a slot per kernel and dtype) and
does its work whole while its slot is empty. So a model whose work never reaches the parts' grain,
or a process that never sets parts, compiles nothing for them.

Which side of a product's output the parts cut (its rows or its columns), or whether it runs
whole, is measured per product shape where the process runs (`calibrate` in
kernels/cpu/part_kernels.py): which way gains from a second core depends on the BLAS's blocking
and the host's caches, not on a rule one host could fix (BENCHMARKS.md). The ways measured sit in
a table the kernels read by name (`ppl_part_dirs`), as the count: a shape the kernels meet with no
way measured is recorded there (`recorded`) and cut on its longer side until it is measured.

A part is work of one thread: with parts > 1 the BLAS should run at one thread (two thread pools on
the same cores oversubscribe them), and the kernels must not run inside a parallel loop of Numba's
(a part would launch a nested one).
"""
import ctypes
import operator

import llvmlite.binding as llvm
from llvmlite import ir
from numba import carray, types
from numba.core.errors import TypingError
from numba.extending import intrinsic, register_jitable

_COUNT = ctypes.c_int64(1)
llvm.add_symbol("ppl_parts", ctypes.addressof(_COUNT))
SLOTS = {("gemm", "float32"): 0, ("gemm", "float64"): 1, ("adam", "float32"): 2, ("adam", "float64"): 3}
_TABLE = (ctypes.c_int64 * len(SLOTS))()
llvm.add_symbol("ppl_part_fns", ctypes.addressof(_TABLE))
_I64 = ir.IntType(64)

# the ways of a product shape: ROWS / COLS cut the output's rows / columns in parts, WHOLE runs it on one
# thread; UNMEASURED: met by the kernels, no way measured yet (its output's longer side is cut)
UNMEASURED, ROWS, COLS, WHOLE = 0, 1, 2, 3
DIR_SLOTS = 64                                  # shapes the table holds (open addressing); past that, unmeasured
_DIRS = (ctypes.c_int64 * (2 * DIR_SLOTS))()    # (key, way) pairs; key 0: an empty slot
llvm.add_symbol("ppl_part_dirs", ctypes.addressof(_DIRS))
_DIM = 1 << 20                                  # a shape's sizes below this have a key (20 bits each)


def get_parts():
    """In how many parts the kernels split large work (1: none, the default)."""
    return int(_COUNT.value)


def set_parts(n):
    """Split each large product and Adam update in n parts run at once on Numba's threads (1: no
    split) where the dtype's parallel kernels are bound (part_kernels.use binds them and sets the
    count); returns the previous count. Numba's thread count caps the threads used."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"parts.set_parts: n must be an integer >= 1, got {n!r}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"parts.set_parts: n must be >= 1, got {n}")
    prev = get_parts()
    _COUNT.value = n
    return prev


def bind_slot(kind, dtype, address):
    """Make the kernels call `address` (a C function) for the parts of `kind` on arrays of dtype."""
    _TABLE[SLOTS[(kind, dtype)]] = int(address)


def slot(kind, dtype):
    """The table slot of kind's parallel kernel for a Numba float type (typing time), or -1."""
    return SLOTS.get((kind, str(dtype)), -1)


@register_jitable
def shape_key(M, N, K, ta, tb):
    """The table's key of a product c (M x N) = op(a) op(b) with inner size K (0: no key)."""
    if M >= _DIM or N >= _DIM or K >= _DIM:
        return 0
    return 1 + (M | (N << 20) | (K << 40) | (int(ta) << 60) | (int(tb) << 61))


@register_jitable
def _slot_of(key):
    """The first slot a key's probe tries."""
    return (key ^ (key >> 20) ^ (key >> 40)) % DIR_SLOTS


def _find(key):
    """The table slot holding `key`, else the empty slot it would take (-1: full)."""
    h = _slot_of(key)
    for i in range(DIR_SLOTS):
        j = (h + i) % DIR_SLOTS
        if _DIRS[2 * j] == key or _DIRS[2 * j] == 0:
            return j
    return -1


def _shape(key):
    k = key - 1
    return (k & (_DIM - 1), (k >> 20) & (_DIM - 1), (k >> 40) & (_DIM - 1), bool((k >> 60) & 1), bool((k >> 61) & 1))


def recorded():
    """The product shapes (M, N, K, ta, tb) the kernels met in parts with no way measured."""
    return [_shape(_DIRS[2 * j]) for j in range(DIR_SLOTS) if _DIRS[2 * j] != 0 and _DIRS[2 * j + 1] == UNMEASURED]


def ways():
    """{(M, N, K, ta, tb): way} of the shapes measured in this process (ROWS, COLS or WHOLE)."""
    return {_shape(_DIRS[2 * j]): int(_DIRS[2 * j + 1]) for j in range(DIR_SLOTS)
            if _DIRS[2 * j] != 0 and _DIRS[2 * j + 1] != UNMEASURED}


def set_way(M, N, K, ta, tb, way):
    """Cut the products of this shape by `way` (ROWS, COLS, WHOLE; UNMEASURED: the longer side)."""
    if way not in (UNMEASURED, ROWS, COLS, WHOLE):
        raise ValueError(f"parts.set_way: way must be one of UNMEASURED, ROWS, COLS, WHOLE, got {way!r}")
    key = shape_key(M, N, K, ta, tb)
    j = _find(key) if key else -1
    if j < 0:
        return False
    _DIRS[2 * j + 1] = way   # the way first: a kernel that finds the key reads a way set for it
    _DIRS[2 * j] = key
    return True


def clear_ways():
    """Forget every shape's way (each is cut on its longer side until measured again)."""
    for i in range(2 * DIR_SLOTS):
        _DIRS[i] = 0


def _global(builder, name, ty):
    mod = builder.module
    try:
        return mod.get_global(name)
    except KeyError:
        g = ir.GlobalVariable(mod, ty, name)
        g.linkage = "external"
        return g


@intrinsic
def parts(typingctx):
    """The count, from nopython code (the external global ppl_parts)."""
    def codegen(context, builder, sig, args):
        return builder.load(_global(builder, "ppl_parts", _I64))
    return types.int64(), codegen


def _address(builder, index):
    """The address bound in slot `index` of the table (0 when none)."""
    table = _global(builder, "ppl_part_fns", ir.ArrayType(_I64, len(SLOTS)))
    return builder.load(builder.gep(table, [ir.Constant(ir.IntType(32), 0), index]))


@intrinsic
def bound(typingctx, index):
    """Whether slot `index` holds a kernel (an address was bound), from nopython code."""
    def codegen(context, builder, sig, args):
        return builder.icmp_unsigned("!=", _address(builder, args[0]), ir.Constant(_I64, 0))
    return types.boolean(index), codegen


@intrinsic
def call(typingctx, index, args):
    """Call slot `index`'s kernel with the tuple `args` as C arguments: an array as its data
    pointer, a boolean or integer as int64, a float as itself (part_kernels' signatures)."""
    if not isinstance(args, types.BaseTuple):
        raise TypingError("parts.call: args must be a tuple")
    for t in args:
        if not isinstance(t, (types.Array, types.Boolean, types.Integer, types.Float)):
            raise TypingError(f"parts.call: cannot pass {t} to a part kernel")

    def codegen(context, builder, sig, llargs):
        vals = []
        for i, t in enumerate(sig.args[1]):
            v = builder.extract_value(llargs[1], i)
            if isinstance(t, types.Array):
                v = context.make_array(t)(context, builder, v).data
            elif isinstance(t, types.Boolean):
                v = builder.zext(v, _I64)
            elif isinstance(t, types.Integer) and t.bitwidth < 64:
                v = builder.sext(v, _I64) if t.signed else builder.zext(v, _I64)
            vals.append(v)
        fnty = ir.FunctionType(ir.VoidType(), [v.type for v in vals])
        builder.call(builder.inttoptr(_address(builder, llargs[0]), fnty.as_pointer()), vals)
        return context.get_dummy_value()
    return types.void(index, args), codegen


@intrinsic
def _dirs(typingctx):
    """A pointer to the ways' table (the external global ppl_part_dirs), from nopython code."""
    def codegen(context, builder, sig, args):
        table = _global(builder, "ppl_part_dirs", ir.ArrayType(_I64, 2 * DIR_SLOTS))
        return builder.gep(table, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 0)])
    return types.CPointer(types.int64)(), codegen


@register_jitable
def way(M, N, K, ta, tb):
    """The measured way of a product shape (ROWS, COLS, WHOLE), from nopython code; UNMEASURED
    where none is, the shape then recorded for `recorded` (a free slot taken)."""
    key = shape_key(M, N, K, ta, tb)
    if key == 0:
        return UNMEASURED
    t = carray(_dirs(), (2 * DIR_SLOTS,))
    h = _slot_of(key)
    for i in range(DIR_SLOTS):
        j = (h + i) % DIR_SLOTS
        k = t[2 * j]
        if k == key:
            return t[2 * j + 1]
        if k == 0:
            t[2 * j] = key
            return UNMEASURED
    return UNMEASURED


@register_jitable
def split(n, parts, grain):
    """How many parts to cut n units of work into (each part at least `grain` units) and the
    parts' length in units, rounded up to a multiple of 16 (a 64-byte boundary of float32)."""
    k = min(parts, n // grain) if grain > 0 else parts
    if k < 2:
        return 1, n
    step = (n + k - 1) // k
    return k, (step + 15) // 16 * 16


@register_jitable
def span(p, step, n):
    """Part p's range lo:hi of n units cut in parts of `step` (empty past the end)."""
    lo = min(p * step, n)
    return lo, min(lo + step, n)
