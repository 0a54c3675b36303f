"""The row digit that several nodes' extra rows share (Lowering.plan_rows): the drawn row at
local index 0 of the digit (stride, span), then each member's extra rows (antithetic partners,
measure-valued branches, REBAR's control-variate rows) after the previous member's, so rows add
up across nodes rather than multiply. Every member is drawn plainly on the rows of the others;
only the drawn rows carry the objective's weight (each member's estimate reads its own rows).
"""
from ..declare import rows
from ..math.slots import slot_local


@rows("rw")
def branch_weights(r, rw, stride, span):
    """rw[r] = 0 on every row of the shared digit but the drawn ones (local index 0)."""
    if slot_local(r, stride, span) != 0:
        rw[r] = 0.0


PARITY = {
    "branch_weights": lambda g: (g.pos(12), 2, 3),
}
