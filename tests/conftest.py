"""Test configuration.

The CUDA simulator must be switched on before numba is first imported, so this runs at the
very top of the test session (and nothing in pytest's config names a numba class). A machine
with an NVIDIA GPU runs the CUDA tests on the device instead.
"""
import os

if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# pytest-xdist workers share one ppl cache folder: kernels/_cache.py locks each function's Numba
# cache while a process compiles it, so a kernel is compiled by one worker and loaded by the
# other (tests/test_cache_lock.py checks this with concurrent processes).

# A `ppl` folder without __init__.py earlier on the path (e.g. cache files an old numba or an
# uninstall left in site-packages) is imported as an empty namespace package: say so once,
# clearly, instead of one collection error per test module.
import importlib.util as _ilu

_spec = _ilu.find_spec("ppl")
if _spec is None or _spec.origin in (None, "namespace"):
    _where = list(_spec.submodule_search_locations) if _spec is not None else []
    raise RuntimeError(f"`import ppl` does not find the package (found {_where or 'nothing'}): remove that "
                       f"leftover folder and install ppl again (pip install -e \".[test]\")")
