"""Sign changes of per-row values: a law's -log p head is its log_prob kernel negated, its VJP
the log_prob VJP seeded by the negated cost cotangents."""
from ..declare import rows


@rows("c")
def negate1(r, c):
    """c[r] = -c[r]."""
    c[r] = -c[r]


@rows("a")
def negated1(r, a, out):
    """out[r] = -a[r]."""
    out[r] = -a[r]


R = 4
PARITY = {
    "negate1": lambda g: (g.x(R),),
    "negated1": lambda g: (g.x(R), g.out(R)),
}
