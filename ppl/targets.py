"""Compilation targets and the compiler's target checks. The CPU is always available; CUDA needs
a device (or the simulator).

The CPU target runs every kernel and the user's own @njit functions (black boxes, layers):
`check_user_functions` types each of them as the step will call it. The CUDA target runs the
same step body with its kernel calls bound to the CUDA twins (CUDA_MODULES): `check_cuda_kernels`
finds each node's kernel calls in the lowered step's typed statements (ir.Step.emitted: lowering/ir.py)
and names the nodes whose kernels have no CUDA implementation in the kernel registry
(kernels/registry.py).
"""
from __future__ import annotations

import importlib

import numpy as np

from .calls import MODULES
from .errors import ModelError
from .ops import OPS

TARGETS = ("cpu", "cuda")


class TargetUnavailable(ModelError):
    """The requested target cannot run on this machine."""


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ModelError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if target == "cuda":
        try:
            from numba import cuda
            ok = cuda.is_available()
        except Exception:  # numba without its CUDA part, or a broken driver
            ok = False
        if not ok:
            raise TargetUnavailable(
                "target 'cuda': no CUDA device was found. Run on a machine with an NVIDIA GPU and driver "
                "(pip install 'numba-ppl[cuda]'), or set NUMBA_ENABLE_CUDASIM=1 to use numba's CUDA simulator "
                "(slow; for testing), or use target='cpu'.")
        _check_cuda_numpy()


# numba-cuda's array typing (numba.cuda.np.arrayobj, loaded at the first kernel compile) registers
# np.row_stack, which NumPy 2.5 removed; numba-cuda 0.30.4, in maintenance mode, fails so at every
# first kernel compile. Its import is tried here, where the error can say what to do.
_ARRAY_TYPING = "numba.cuda.np.arrayobj"


def _check_cuda_numpy() -> None:
    if hasattr(np, "row_stack"):
        return
    try:
        importlib.import_module(_ARRAY_TYPING)
    except AttributeError as e:
        if "row_stack" not in str(e):
            raise
        import numba
        raise TargetUnavailable(
            f"target 'cuda': this numba's CUDA support (numba {numba.__version__}) needs numpy.row_stack, which "
            f"NumPy {np.__version__} removed ({e}); install NumPy < 2.5 (pip install 'numpy<2.5'), a numba-cuda "
            f"that supports NumPy 2.5, or use target='cpu'.") from None
    except ImportError:   # the simulator, or another layout of numba's CUDA package: nothing to check
        pass


# the CPU target's kernel modules: the generated body's module aliases -> modules of ppl.kernels
# (a family declared once, kernels/families/, is re-exported by cpu/core.py and cuda/core.py: its alias binds those)
CPU_MODULES = MODULES
# the CUDA target's kernel set: the generated body's module aliases -> modules of ppl.kernels
# (the same function names and arguments as the CPU modules the CPU header binds)
CUDA_MODULES = {"core": "cuda.core", "noise": "cuda.noise", "rows": "cuda.rows", "antithetic": "cuda.core",
                "relax": "cuda.relax", "rebar": "cuda.rebar", "price": "cuda.core"}
# each alias's kernel family in the kernel registry (kernels/registry.py; "core" includes the families
# cuda/core.py re-exports; a family declared once is registered under its file's name, the alias's)
CUDA_FAMILIES = {alias: alias for alias in CUDA_MODULES}   # the registry's families bear the aliases' names


def check_cuda_kernels(step, model, choices) -> None:
    """The CUDA target runs the same body: every kernel the lowered step (lowering.ir.Step) calls
    must be in the CUDA kernel set (CUDA_MODULES); otherwise an error names each node, what
    lowered it (`choices`: node -> its estimator's choice) and the kernels missing."""
    for n in model.order:
        if n.kind in OPS and "cuda" not in OPS[n.kind].targets:
            what = "black-box cost" if n.kind == "blackbox" else "user layer"
            raise ModelError(f"target 'cuda': the {what} '{n.name}' runs a Python/@njit function per row on the "
                             f"CPU; compile with target='cpu'")
    for kernel, node in step.user_kernels.values():
        if kernel.cuda is None:
            est = choices[node][0].estimator if node in choices else node.kind
            raise ModelError(f"target 'cuda': estimator '{est}' of node '{node.name}' calls the kernel "
                             f"'{kernel.name}', which has no CUDA implementation; give it one "
                             f"(ppl.Kernel(cpu=..., cuda=...)), choose another estimator or compile with target='cpu'")
    from .kernels import registry
    for mod in CUDA_MODULES.values():   # importing a CUDA module registers its kernels
        importlib.import_module(f"ppl.kernels.{mod}")
    missing = {}
    for node, alias, fn in ((st.owner, *st.kernel) for st in step.emitted if st.kernel is not None):
        family = CUDA_FAMILIES.get(alias)
        if family is None or "cuda" not in registry.targets(family, fn):
            missing.setdefault(node, set()).add(f"{alias}.{fn}")
    if missing:
        what = [f"'{n.name}' ({choices[n][0].estimator if n in choices else n.kind}: "
                f"{', '.join(sorted(f))})"
                for n, f in missing.items()]
        raise ModelError(f"target 'cuda': no CUDA kernel for {'; '.join(what)}; choose another estimator for "
                         f"these nodes or compile with target='cpu'")


def _typing_error_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def check_user_functions(model, dtype) -> None:
    """Type every user function as the step will call it (one 1D C-contiguous row of the
    program's dtype per argument) with numba's own typing: a black box's fn must return one
    number, its grad accept the rows followed by one gradient row per input; a layer's fn takes
    the rows and its output row, its vjp the rows, the output row, its cotangent and one
    gradient row per input. Errors name the cost or layer and say what was found."""
    import inspect

    from numba import types
    row = types.Array(types.float32 if np.dtype(dtype) == np.float32 else types.float64, 1, "C")
    extra = {("black box", "fn"): "", ("black box", "grad"): " and their gradients",
             ("layer", "fn"): " and the output row", ("layer", "vjp"): ", the output row, its cotangent and the gradients"}
    for c in model.order:
        if not (c.kind in OPS and OPS[c.kind].user):
            continue
        n = len(c.inputs)
        if c.kind == "blackbox":
            label, name = "black box", c.attrs.get("cost_name", c.name)
            calls = (("fn", "fn", n, "fn(row_1, ..., row_n) -> float"),
                     ("grad", "grad", 2 * n, "grad(row_1, ..., row_n, g_1, ..., g_n) writing d cost / d row_i into g_i"))
        else:
            label, name = "layer", c.name
            calls = (("fn", "fn", n + 1, "fn(row_1, ..., row_n, out) writing the layer's row into out"),
                     ("grad", "vjp", 2 * n + 2, "vjp(row_1, ..., row_n, out, gout, g_1, ..., g_n) writing "
                                                "d(gout . out) / d row_i into g_i"))
        for attr, what, nargs, doc in calls:
            f = c.attrs[attr]
            if f is None:
                continue
            try:
                sig = inspect.signature(f.py_func)
            except (TypeError, ValueError):
                sig = None
            if sig is not None:
                try:
                    sig.bind(*range(nargs))
                except TypeError:
                    raise ModelError(f"{label} '{name}': {what} takes {len(sig.parameters)} argument(s) but is "
                                     f"called with {nargs} ({n} input row(s){extra[label, what]}); "
                                     f"the signature is {doc}") from None
            args = (row,) * nargs
            try:
                f.compile(args)
            except Exception as e:
                raise ModelError(f"{label} '{name}': {what} does not compile for {nargs} 1D {np.dtype(dtype)} "
                                 f"row(s) (numba: {_typing_error_line(e)}); the signature is {doc}") from None
            if what == "fn" and label == "black box":
                rt = f.overloads[args].signature.return_type
                if not isinstance(rt, (types.Float, types.Integer)):
                    raise ModelError(f"black box '{name}': fn returns {rt} for 1D {np.dtype(dtype)} rows; it must "
                                     f"return one number per row (a float, e.g. np.sum(...) of an array)")
