"""Launch configuration of every CUDA kernel of ``ppl`` (one place, read once at import).

``PPL_CUDA_BLOCK`` (environment, default 128): threads per block, a power of two in
[1, 1024]; it is also the size of the shared-memory buffer of the one-block reductions.
Kernels are grid-stride loops, so any grid size is correct; the grid is capped at
``MAX_BLOCKS`` blocks and a launch over n items uses min(BLOCK, next power of two >= n)
threads (a tiny array does not start a full block, which keeps the CUDA simulator quick).
"""
import os

MAX_BLOCKS = 2048


def _block_from_env():
    raw = os.environ.get("PPL_CUDA_BLOCK", "128")
    try:
        b = int(raw)
    except ValueError:
        b = 0
    if b < 1 or b > 1024 or b & (b - 1):
        raise ValueError(
            f"PPL_CUDA_BLOCK={raw!r}: the CUDA block size must be a power of two between 1 "
            "and 1024; unset it for the default 128"
        )
    return b


BLOCK = _block_from_env()
