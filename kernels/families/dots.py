"""The dot products of a row with K rows of a per-row matrix, and their VJP: out_k = sum_j a_j B_kj
(a: J columns, B: K rows of J, k-major), e.g. a chain's emission terms, the step's one-hot symbol
with each state's log-probabilities (ppl/language/markov.py).

Declared once (kernels/declare.py): row bodies, the sums in column order (a CUDA thread per row);
a skippable gradient is tested once per row. Conventions are cpu/core.py's.
"""
from ..declare import rows
from ..math.scalar import like


@rows("out")
def dots_fwd(r, a, b, out):
    """out[r, k] = sum_j a[r, j] b[r, k J + j], J = a's width (b: K rows of J, k-major)."""
    J = a.shape[1]
    for k in range(out.shape[1]):
        s = like(a, 0.0)
        for j in range(J):
            s += a[r, j] * b[r, k * J + j]
        out[r, k] = s


@rows("gout")
def dots_bwd(r, a, b, gout, ga, gb):
    """ga[r, j] += sum_k gout[r, k] b[r, k J + j] ; gb[r, k J + j] += gout[r, k] a[r, j] (each
    skippable)."""
    J = a.shape[1]
    if ga.shape[0] != 0:
        for k in range(gout.shape[1]):
            for j in range(J):
                ga[r, j] += gout[r, k] * b[r, k * J + j]
    if gb.shape[0] != 0:
        for k in range(gout.shape[1]):
            for j in range(J):
                gb[r, k * J + j] += gout[r, k] * a[r, j]


R, J, K = 4, 3, 2
PARITY = {
    "dots_fwd": lambda g: (g.x(R, J), g.x(R, K * J), g.out(R, K)),
    "dots_bwd": lambda g: (g.x(R, J), g.x(R, K * J), g.x(R, K), g.x(R, J), g.x(R, K * J)),
}
