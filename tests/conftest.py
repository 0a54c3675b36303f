"""Test configuration.

The CUDA simulator must be switched on before numba is first imported, so this runs at the
very top of the test session (and nothing in pytest's config names a numba class). A machine
with an NVIDIA GPU runs the CUDA tests on the device instead.
"""
import os

if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
