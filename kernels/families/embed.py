"""The embedding's kernels: row r of the output is row index[r] of a table (a group's parameters
looked up by the group of the data row), and the VJP that adds each row's cotangent back into
its table row. The index is a float array of whole numbers in [0, table rows) (checked where the
data comes in: Program's inputs)."""
from ..declare import cells, items


@cells("out")
def embed_fwd(r, j, index, table, out):
    """out[r, j] = table[index[r, 0], j]."""
    out[r, j] = table[int(index[r, 0]), j]


@items("gout.shape[1]")
def embed_bwd(j, index, gout, gtable):
    """gtable[index[r, 0], j] += gout[r, j] for every row r: one item per column, its rows in
    order (rows of one group add into one cell: no two iterations write the same cell)."""
    for r in range(gout.shape[0]):
        gtable[int(index[r, 0]), j] += gout[r, j]


R, D, G = 5, 3, 4   # rows, columns, table rows


def _index(g):
    return (g.u(R, 1) * G).astype(g.dt) // 1


PARITY = {
    "embed_fwd": lambda g: (_index(g), g.x(G, D), g.out(R, D)),
    "embed_bwd": lambda g: (_index(g), g.x(R, D), g.x(G, D)),
}
