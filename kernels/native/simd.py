"""Vector code that Numba's loops cannot express: Adam's float32 update over 16 lanes with the
division taken by AVX-512's reciprocal estimate and one Newton step.

Adam's update divides by sqrt(v) + eps for every parameter. The divider is the bottleneck of
that loop (a division and a square root per parameter, 0.8 ns a parameter on the test machine:
~3.4 us of a 5-8 us training step at batch 1 on the 64-32 SBN). ``vrcp14ps`` gives 1 / d to
2^-14 in one instruction that pipelines like a multiply, and one Newton step
r' = r + r (1 - d r) brings it to float32 accuracy; the square root stays exact (an estimate for
it measured slower: the remaining ports are then the bound). Measured on 4 x 10^5 parameters
spread over 20 decades (tests/kernels/test_kernels_optim.py): the step lr m c1 / (sqrt(v c2) + eps) within
5.0 ulp of its float64 value, mean 1.05 (the exact division loop: 4.7 and 1.0); without the
Newton step ~900 ulp. ``adam_update`` at 4.2k parameters: 3.2-3.4 us before, 1.6-1.85 us now;
against the exact loop kept as the fallback (``families/optim.py``'s ``_adam_moments_exact``) in the same
process 1.09-1.28x, and 0.97-1.13x at 3 x 10^5 parameters (memory-bound there; BENCHMARKS.md).

``LANES`` is 16 where the code Numba generates may use AVX-512F (its target's features: the
host's, or ``NUMBA_CPU_FEATURES``), else 0 and callers keep their exact scalar loop. Only
float32 arrays take this path (float64 programs are the exact-gradient oracles).
"""
import llvmlite.binding as llvm
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

from ..math.optim import ADAM_G_MIN, F32_NORMAL_MIN


def _target_features():
    """The CPU features Numba compiles for, as a set of names ('avx512f', ...)."""
    if config.CPU_FEATURES is not None:
        return {f[1:] for f in config.CPU_FEATURES.split(",") if f.startswith("+")}
    return {k for k, on in llvm.get_host_cpu_features().items() if on}


LANES = 16 if "avx512f" in _target_features() else 0


def lanes_ok(*arrays):
    """At typing time: whether the arrays (Numba types) may take the 16-lane path: C-contiguous
    1-D float32 arrays, on a target with AVX-512F."""
    return bool(LANES) and all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
                               and a.dtype == types.float32 for a in arrays)


def _lanes_of(builder, context, args, sig, L, masked):
    """Pointers to lanes [i, i + L) of the four arrays and the lane mask (None unless masked)."""
    vec = ir.VectorType(ir.FloatType(), L)
    i = context.cast(builder, args[4], sig.args[4], types.int64)
    ptrs = [builder.bitcast(builder.gep(make_array(sig.args[k])(context, builder, args[k]).data, [i]),
                            vec.as_pointer()) for k in range(4)]
    mask = None
    if masked:
        n = builder.trunc(builder.sub(context.cast(builder, args[5], sig.args[5], types.int64), i), ir.IntType(32))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), L), list(range(L)))
        mask = builder.icmp_signed("<", lanes, _splat(builder, n, L))
    return vec, ptrs, mask


def _splat(builder, x, L):
    undef = ir.Constant(ir.VectorType(x.type, L), ir.Undefined)
    i32 = ir.IntType(32)
    return builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)), undef,
                                  ir.Constant(ir.VectorType(i32, L), [0] * L))


def _adam_lanes_intrinsic(masked):
    L = 16

    @intrinsic
    def adam_lanes(typingctx, theta, grad, m, v, i, n, a1, b1, b2, c2, eps):
        if not lanes_ok(theta, grad, m, v):
            raise TypingError("adam_lanes: theta, grad, m, v must be C-contiguous 1-D float32 arrays "
                              "on a target with AVX-512F")
        sig = types.void(theta, grad, m, v, i, n, a1, b1, b2, c2, eps)

        def codegen(context, builder, sig, args):
            vec, ptrs, mask = _lanes_of(builder, context, args, sig, L, masked)
            fl = ("contract",)

            def const(c):
                return ir.Constant(vec, [float(c)] * L)

            def splat_arg(k):
                return _splat(builder, context.cast(builder, args[k], sig.args[k], types.float32), L)

            def fn(name, nargs=1, extra=()):
                return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * nargs + list(extra)), name)

            if masked:
                mask_t = mask.type
                load_f = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vec, [vec.as_pointer(), ir.IntType(32), mask_t, vec]),
                    f"llvm.masked.load.v{L}f32.p0v{L}f32")
                store_f = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), ir.IntType(32), mask_t]),
                    f"llvm.masked.store.v{L}f32.p0v{L}f32")
                align = ir.Constant(ir.IntType(32), 4)
                load = lambda p: builder.call(load_f, [p, align, mask, const(0.0)])   # noqa: E731
                store = lambda x, p: builder.call(store_f, [x, p, align, mask])      # noqa: E731
            else:
                load = lambda p: builder.load(p, align=4)                              # noqa: E731
                store = lambda x, p: builder.store(x, p, align=4)                      # noqa: E731

            A1, B1, B2, C2, EPS = (splat_arg(k) for k in range(6, 11))
            th, g, mm, vv = (load(p) for p in ptrs)
            zero, one, tiny = const(0.0), const(1.0), const(F32_NORMAL_MIN)
            fabs, sqrt = fn(f"llvm.fabs.v{L}f32"), fn(f"llvm.sqrt.v{L}f32")
            rcp = fn("llvm.x86.avx512.rcp14.ps.512", 2, (ir.IntType(16),))
            # scalar_optim.adam_step's flushes: |g| < 2^-56 -> 0, moments below the normal range -> 0
            g = builder.select(builder.fcmp_ordered("<", builder.call(fabs, [g]), const(ADAM_G_MIN)), zero, g)
            mi = builder.fadd(builder.fmul(B1, mm, flags=fl), builder.fmul(builder.fsub(one, B1), g, flags=fl), flags=fl)
            vi = builder.fadd(builder.fmul(B2, vv, flags=fl),
                              builder.fmul(builder.fmul(builder.fsub(one, B2), g), g, flags=fl), flags=fl)
            mi = builder.select(builder.fcmp_ordered("<", builder.call(fabs, [mi]), tiny), zero, mi)
            vi = builder.select(builder.fcmp_ordered("<", vi, tiny), zero, vi)
            den = builder.fadd(builder.call(sqrt, [builder.fmul(vi, C2)]), EPS)
            r0 = builder.call(rcp, [den, zero, ir.Constant(ir.IntType(16), -1)])
            r1 = builder.fadd(r0, builder.fmul(r0, builder.fsub(one, builder.fmul(den, r0, flags=fl), flags=fl),
                                               flags=fl), flags=fl)
            # den = inf (v overflowed): r0 = 0 and the Newton step would make 0 * inf = NaN; the
            # exact update gives m / inf = 0 there. A NaN den gives a NaN r0 and stays NaN.
            r1 = builder.select(builder.fcmp_ordered("==", r0, zero), zero, r1)
            store(builder.fsub(th, builder.fmul(builder.fmul(A1, mi), r1)), ptrs[0])
            store(mi, ptrs[2])
            store(vi, ptrs[3])
            return context.get_dummy_value()

        return sig, codegen

    return adam_lanes


adam_lanes = _adam_lanes_intrinsic(masked=False)
"""adam_lanes(theta, grad, m, v, i, n, a1, b1, b2, c2, eps): Adam on lanes [i, i + 16) (n unused),
a1 = lr c1 (c1, c2 Adam's bias corrections), the division by rcp14 + one Newton step."""
adam_lanes_masked = _adam_lanes_intrinsic(masked=True)
"""The same on lanes [i, n) of [i, i + 16), n - i < 16 (masked loads and stores)."""
