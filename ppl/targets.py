"""Compilation targets. The CPU is always available; CUDA needs a device (or the simulator)."""
from __future__ import annotations

from .dsl import ModelError

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
                "(pip install 'ppl[cuda]'), or set NUMBA_ENABLE_CUDASIM=1 to use numba's CUDA simulator "
                "(slow; for testing), or use target='cpu'.")
