"""Every candidate estimator of a node side by side in one step (ppl/estimators/candidates.py):
each candidate draws into a buffer of its own, whose rows of its slot in the node's digit are
copied into the node's values (`copy_slot_rows`); each estimates into gradient buffers of its
own, and the one in force, a number in the program's state, adds its buffers into the node's
parameter cotangents (`add_chosen`), so that changing the choice compiles nothing.
They run only while the choice is measured: their row digits and candidate numbers (`cand_*`)
are compiled as int64 values (kernels/_link.PLAIN_PARAMS), one specialisation per dtype, not
one per member and node.
"""
from ..declare import cells, rows
from ..math.scalar import like
from ..math.slots import slot_local


@cells("dst")
def copy_slot_rows(r, j, src, cand_stride, cand_lo, cand_hi, cand_span, dst):
    """dst[r, :] = src[r, :] on the rows whose local index in the digit (cand_stride, cand_span) is
    in [cand_lo, cand_hi)."""
    k = slot_local(r, cand_stride, cand_span)
    if cand_lo <= k and k < cand_hi:
        dst[r, j] = src[r, j]


@cells("dst")
def add_chosen(r, j, chosen, cand_k, src, dst):
    """dst += src when candidate cand_k is the one in force (chosen[0] == cand_k, compared in
    chosen's precision: a float32 word against an int64 is a comparison in float64)."""
    if chosen[0] == like(chosen, cand_k):
        dst[r, j] += src[r, j]


@rows("out")
def drawn_rows_differ(r, src, value, cand_stride, cand_span, out):
    """out[r] = 1 on a drawn row (local index 0 of the digit (cand_stride, cand_span)) where src and
    value differ, else 0: a member whose drawn row is not the values' (the measurement excludes it)."""
    out[r] = 0
    if slot_local(r, cand_stride, cand_span) == 0:
        for j in range(value.shape[1]):
            if src[r, j] != value[r, j]:
                out[r] = 1


PARITY = {
    # 12 rows, a digit of stride 2 and span 3: local indices 1 .. 1 copied
    "copy_slot_rows": lambda g: (g.x(12, 3), 2, 1, 2, 3, g.x(12, 3)),
    "drawn_rows_differ": lambda g: (g.bits(12, 3), g.bits(12, 3), 2, 3, g.out(12)),
    "add_chosen": lambda g: (g.x(1) * 0 + 2, 2, g.x(12, 3), g.x(12, 3)),
}
