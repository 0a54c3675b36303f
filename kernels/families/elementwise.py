"""Elementwise arithmetic and row sums of (R, D) arrays: add, div, pow (a constant exponent), mul,
the extremum (min or max), copy, each with its VJP, and row_sum (out_rows[r] = sum_j x[r, j]) with its VJP.

Declared once (kernels/declare.py): the forward kernels and the VJPs are per-cell bodies (a CUDA
thread per cell; a skippable gradient's test is the same for every cell, and LLVM hoists it out of
the CPU's loop); row_sum and its VJP are row bodies (the sum in column order, as the CPU adds it,
one CUDA thread per row). Conventions are cpu/core.py's.
"""
from ..declare import cells, rows
from ..math.scalar import like


@cells("out")
def add_fwd(r, j, a, b, out):
    """out = a + b."""
    out[r, j] = a[r, j] + b[r, j]


@cells("gout")
def add_bwd(r, j, gout, ga, gb):
    """ga += gout ; gb += gout (each skippable)."""
    if ga.shape[0] != 0:
        ga[r, j] += gout[r, j]
    if gb.shape[0] != 0:
        gb[r, j] += gout[r, j]


@cells("out")
def div_fwd(r, j, a, b, out):
    """out = a / b (elementwise; IEEE division: b = 0 gives +-inf or NaN)."""
    out[r, j] = a[r, j] / b[r, j]


@cells("gout")
def div_bwd(r, j, a, b, out, gout, ga, gb):
    """ga += gout / b ; gb -= gout * out / b, out = a / b (each skippable)."""
    if ga.shape[0] != 0:
        ga[r, j] += gout[r, j] / b[r, j]
    if gb.shape[0] != 0:
        gb[r, j] -= gout[r, j] * out[r, j] / b[r, j]


@cells("out")
def pow_fwd(r, j, x, p, out):
    """out = x ** p for a constant p (x < 0 with a non-integer p gives NaN, 0 ** -1 inf)."""
    out[r, j] = x[r, j] ** p


@cells("gout")
def pow_bwd(r, j, x, p, out, gout, gx):
    """gx += gout * p * x ** (p - 1)."""
    gx[r, j] += gout[r, j] * p * x[r, j] ** (p - 1.0)


@cells("out")
def mul_fwd(r, j, a, b, out):
    """out = a * b (elementwise)."""
    out[r, j] = a[r, j] * b[r, j]


@cells("gout")
def mul_bwd(r, j, a, b, gout, ga, gb):
    """ga += gout * b ; gb += gout * a (each skippable)."""
    if ga.shape[0] != 0:
        ga[r, j] += gout[r, j] * b[r, j]
    if gb.shape[0] != 0:
        gb[r, j] += gout[r, j] * a[r, j]


@cells("out")
def extremum_fwd(r, j, a, b, s, out):
    """out = min(a, b) for s = 1, max(a, b) for s = -1 (the smaller of s a and s b; NaN where
    either is NaN)."""
    x, y = a[r, j], b[r, j]
    out[r, j] = x if s * x <= s * y else (y if s * y < s * x else x + y)


@cells("gout")
def extremum_bwd(r, j, a, b, s, gout, ga, gb):
    """extremum_fwd's VJP: the cotangent to the input it took, to a at a tie; NaN to both where
    either is NaN (each skippable)."""
    x, y, g = a[r, j], b[r, j], gout[r, j]
    if s * x <= s * y:
        if ga.shape[0] != 0:
            ga[r, j] += g
    elif s * y < s * x:
        if gb.shape[0] != 0:
            gb[r, j] += g
    else:
        if ga.shape[0] != 0:
            ga[r, j] += g * (x + y)
        if gb.shape[0] != 0:
            gb[r, j] += g * (x + y)


@cells("out")
def copy_fwd(r, j, x, out):
    """out = x."""
    out[r, j] = x[r, j]


@cells("gout")
def copy_bwd(r, j, gout, gx):
    """gx += gout (the VJP of copy_fwd)."""
    gx[r, j] += gout[r, j]


@rows("x")
def row_sum_fwd(r, x, out_rows):
    """out_rows[r] = sum_j x[r, j]."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += x[r, j]
    out_rows[r] = s


@rows("gx")
def row_sum_bwd(r, grow, gx):
    """gx[r, :] += grow[r]."""
    g = grow[r]
    for j in range(gx.shape[1]):
        gx[r, j] += g


R, D = 4, 6
PARITY = {
    "add_fwd": lambda g: (g.x(R, D), g.x(R, D), g.out(R, D)),
    "add_bwd": lambda g: (g.x(R, D), g.x(R, D), g.skip(2)),
    "mul_fwd": lambda g: (g.x(R, D), g.x(R, D), g.out(R, D)),
    "extremum_fwd": lambda g: (g.x(R, D), g.x(R, D), -1.0, g.out(R, D)),
    "extremum_bwd": lambda g: (g.x(R, D), g.x(R, D), -1.0, g.x(R, D), g.x(R, D), g.x(R, D)),
    "mul_bwd": lambda g: (g.x(R, D), g.x(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "div_fwd": lambda g: (g.x(R, D), g.pos(R, D), g.out(R, D)),
    "div_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "pow_fwd": lambda g: (g.pos(R, D), 1.7, g.out(R, D)),
    "pow_bwd": lambda g: (g.pos(R, D), -0.6, g.x(R, D), g.x(R, D), g.x(R, D)),
    "copy_fwd": lambda g: (g.x(R, D), g.out(R, D)),
    "copy_bwd": lambda g: (g.x(R, D), g.x(R, D)),
    "row_sum_fwd": lambda g: (g.x(R, D), g.out(R)),
    "row_sum_bwd": lambda g: (g.x(R), g.x(R, D)),
}
