"""Per-step rows of a loop block (ppl/lowering/loops.py): a buffer of a scan's body holds its T
steps one after the other, T times the rows of one step (R)."""
from ..declare import rows
from ..math.scalar import like


@rows("out")
def sum_steps(r, c, T, out):
    """out[r] = sum over the T steps of c[t R + r] (R = out.shape[0]): a per-step cost's rows summed."""
    R = out.shape[0]
    s = like(out, 0.0)
    for t in range(T):
        s += c[t * R + r]
    out[r] = s


@rows("out")
def stack_steps(r, y, T, out):
    """out[r, t w + j] = y[t R + r, j] (w = y.shape[1]): a per-step output's steps side by side."""
    R, w = out.shape[0], y.shape[1]
    for t in range(T):
        for j in range(w):
            out[r, t * w + j] = y[t * R + r, j]


@rows("g")
def unstack_steps_bwd(r, g, T, gy):
    """gy[t R + r, j] += g[r, t w + j]: the VJP of stack_steps."""
    R, w = g.shape[0], gy.shape[1]
    for t in range(T):
        for j in range(w):
            gy[t * R + r, j] += g[r, t * w + j]


PARITY = {
    "sum_steps": lambda g: (g.x(12), 3, g.out(4)),
    "stack_steps": lambda g: (g.x(12, 2), 3, g.out(4, 6)),
    "unstack_steps_bwd": lambda g: (g.x(4, 6), 3, g.x(12, 2)),
}
