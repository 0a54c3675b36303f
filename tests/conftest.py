"""Test configuration.

The CUDA simulator must be switched on before numba is first imported, so this runs at the
very top of the test session (and nothing in pytest's config names a numba class). A machine
with an NVIDIA GPU runs the CUDA tests on the device instead.
"""
import os

if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# pytest-xdist workers compile the same kernels at the same moment: Numba's cache files are not
# safe for concurrent writers (an index and its data files are written separately), so each
# worker keeps its own ppl cache folder (Numba's files of ppl go there, see kernels/_cache.py)
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker:
    from pathlib import Path as _Path
    _base = os.environ.get("PPL_CACHE_DIR") or str(_Path.home() / ".cache" / "ppl")
    os.environ["PPL_CACHE_DIR"] = os.path.join(_base, "xdist-" + _worker)

# A `ppl` folder without __init__.py earlier on the path (e.g. cache files an old numba or an
# uninstall left in site-packages) is imported as an empty namespace package: say so once,
# clearly, instead of one collection error per test module.
import importlib.util as _ilu

_spec = _ilu.find_spec("ppl")
if _spec is None or _spec.origin in (None, "namespace"):
    _where = list(_spec.submodule_search_locations) if _spec is not None else []
    raise RuntimeError(f"`import ppl` does not find the package (found {_where or 'nothing'}): remove that "
                       f"leftover folder and install ppl again (pip install -e \".[test]\")")
