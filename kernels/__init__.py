"""Pure numerics of ppl (installed as ppl.kernels): scalar math shared by the CPU and CUDA
targets, CPU array kernels, CUDA kernels. Nothing here knows about graphs.

Numba's threading layer is started on import: a cached parallel kernel that is linked into
another compiled function (the generated step, or a user's @njit loop) before any parallel
function has run in the process otherwise aborts with "Symbol not found: allocate_sched".

Numba's cache files of these kernels go to the ppl cache folder, not beside the sources
(see `_cache`): installed before any kernel module is compiled. The generated step calls the
array kernels without linking their code into its own (see `_link`).
"""
import numba as _numba

from . import _cache, _link

_cache.install()
_link.install()
_numba.get_num_threads()


def reexport(namespace: dict, *modules) -> None:
    """Bind in `namespace` (a kernel module's globals) every public function each of `modules`
    defines (not imports), under its own name. The generated step calls all kernels of a target
    through one module (K_ = cpu/core.py or cuda/core.py), so those two re-export the families kept in
    modules of their own, without a list of names to keep in step with each family."""
    for m in modules:
        for name, f in vars(m).items():
            if (not name.startswith("_") and callable(f) and not isinstance(f, type)
                    and getattr(f, "__module__", None) == m.__name__):
                namespace[name] = f
