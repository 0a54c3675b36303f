"""Arrays a step reads and writes, carved from one allocation with a gap between neighbours.

LLVM vectorises a kernel's loop over a row behind a run-time test that the arrays it writes do
not overlap the arrays it reads; the test is conservative by a few vectors, so two arrays that
merely lie next to each other in memory fail it and the loop runs scalar (docs/benchmarks/kernels.md,
"A program's arrays apart in memory"). Allocated one by one, small arrays come from the C heap side
by side, so a step's speed depended on where the allocator happened to put its buffers. Carved
from one block, every array starts on a cache line, GAP bytes after the previous one ends (also
before the first and after the last), in the same place on every run.
"""
from __future__ import annotations

import numpy as np

ALIGN = 64     # bytes: a cache line, an AVX-512 vector
GAP = 1024     # bytes between neighbours: well past the vectoriser's slack (a few vectors)


def _up(n: int, k: int) -> int:
    return -(-n // k) * k


def carve(shapes, dtype) -> list:
    """Zeroed C-contiguous arrays of `shapes` (tuples or ints) and `dtype`, views of one block."""
    dtype = np.dtype(dtype)
    shapes = [(s,) if np.ndim(s) == 0 else tuple(s) for s in shapes]
    offsets, at = [], GAP
    for shape in shapes:
        offsets.append(at)
        at = _up(at + int(np.prod(shape)) * dtype.itemsize + GAP, ALIGN)
    block = np.zeros(at + ALIGN, np.uint8)
    base = (-block.ctypes.data) % ALIGN
    out = []
    for shape, off in zip(shapes, offsets):
        start = base + off
        out.append(block[start: start + int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape))
    return out
