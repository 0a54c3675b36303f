"""Pure numerics of ppl (installed as ppl.kernels): scalar math shared by the CPU and CUDA
targets, CPU array kernels, CUDA kernels. Nothing here knows about graphs.

Numba's threading layer is started on import: a cached parallel kernel that is linked into
another compiled function (the generated step, or a user's @njit loop) before any parallel
function has run in the process otherwise aborts with "Symbol not found: allocate_sched".

Numba's cache files of these kernels go to the ppl cache folder, not beside the sources
(see `_cache`): installed before any kernel module is compiled. The generated step calls the
array kernels without linking their code into its own (see `_link`). Numba's first compile in a
process no longer imports scipy.linalg to ask whether np.dot has a BLAS
(`numba_compat.defer_blas_check`).
"""
import numba as _numba

from . import _cache, _link, numba_compat

_cache.install()
_link.install()
numba_compat.defer_blas_check()
_numba.get_num_threads()

