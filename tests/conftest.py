"""Test configuration.

The CUDA simulator must be switched on before numba is first imported, so this runs at the
very top of the test session (and nothing in pytest's config names a numba class).
"""
import os

try:  # a real GPU is used when present; otherwise the CUDA tests run in the simulator
    import subprocess  # noqa: F401

    _has_gpu = os.path.exists("/dev/nvidia0")
except Exception:  # pragma: no cover
    _has_gpu = False
if not _has_gpu:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
