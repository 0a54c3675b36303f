"""A picture of a compiled model (Program.render, `ppl render`): its inputs, parameters, random
nodes (law and estimator), costs, the plates as boxes around what is drawn in them, a scan's
body once with its length and its carry: the state a step starts from, an edge from its initial
value and a dashed back edge ("next step") from what sets it at the step's end.

Three outputs from one description (`picture`): Graphviz source (`.dot` / `.gv`, or the string
render returns), SVG written here without any library (a layered layout: a node's row is its
depth in the graph, `networkx.topological_generations`), and PNG, drawn by Graphviz's `dot` when
it is installed, else by matplotlib (the `plot` extra) from the same layout. By default the
picture shows the nodes a reader of the model thinks in (inputs, layers owning parameters, free
parameters, random nodes, costs), an edge wherever a path of elementwise nodes joins two of them;
`detail=True` shows every node.
"""
from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError
from ..ops import OPS

W, H, GAP_X, GAP_Y, PAD = 150, 46, 30, 40, 14   # SVG: node box, gaps, a plate's margin (px)


@dataclass
class Box:
    """A plate (or a scan's body) as a box: its label and the shown nodes drawn in it."""
    key: str
    label: str
    members: set = field(default_factory=set)
    depth: int = 0


@dataclass
class Picture:
    nodes: list            # (name, label, shape, fill) in topological order
    edges: list            # (from, to)
    boxes: list            # Box, outermost first
    band: dict = field(default_factory=dict)   # name -> its column band (_band): a plate's nodes side by side
    back: list = field(default_factory=list)   # (from, to): a scan's carry set for the next step (dashed)


def picture(prog, detail: bool = False) -> Picture:
    """What is drawn: shown nodes with their labels, the edges between them, the plates' boxes."""
    an, model = prog.analysis, prog.model
    chosen = {n: ch.estimator for n, (ch, _) in prog.choices.items()}
    observed = {o.value.name for o in getattr(model, "observed", {}).values()}
    scope = _scopes(model, an)

    latents = {lat.node: lat for lat in getattr(model, "latents", {}).values()}

    def shown(n):
        return detail or n.kind in ("input", "param", "carry") or n.is_stochastic or n.is_cost or n in latents or bool(
            OPS.get(n.kind) and OPS[n.kind].params) or n.kind in ("blackbox", "user_layer")

    nodes, keep = [], set()
    for n in an.order:
        if not shown(n):
            continue
        keep.add(n)
        law = prog.choices.get(n, (None, None))[1]
        if n.is_stochastic:
            label, shape, fill = f"{n.name}\n{law.dist.name if law else n.kind} · {chosen.get(n, '')}", "ellipse", \
                "#ffffff"
        elif n in latents:   # an automatic guide's latent: the transform of its Normal
            label, shape, fill = f"{n.name}\nlatent, {latents[n].prior.entry.name} prior", "ellipse", "#ffffff"
        elif n.kind == "input":
            label, shape, fill = f"{n.name}\ninput ({n.width})", "box", "#d9d9d9" if n.name in observed else "#ffffff"
        elif n.is_cost:
            label, shape, fill = f"{n.attrs['cost_name']}\ncost", "octagon", "#fdf1d6"
        elif n.kind == "param":
            label, shape, fill = f"{n.name}\nparameter ({n.width})", "note", "#eef3fb"
        elif n.kind == "carry":
            label, shape, fill = f"{n.name}\ncarry ({n.width})", "box", "#fff4dc"
        else:
            label, shape, fill = f"{n.name}\n{n.kind} ({n.width})", "box", "#eef3fb"
        nodes.append((n.name, label, shape, fill))
    edges = set()
    for n in an.order:
        if n in keep:
            for a in _shown_sources(n, keep):
                edges.add((a.name, n.name))
    back = set()
    for lp in getattr(model, "loops", ()):   # what sets each carry at a step's end, to the carry
        for c, o in zip(lp.carry, lp.carry_out):
            back |= {(a.name, c.name) for a in ([o] if o in keep else _shown_sources(o, keep)) if a is not c}
    boxes = _boxes(model, scope, keep)
    loops = [lp.name for lp in getattr(model, "loops", ())]
    band = {n.name: (*_band(model, scope[n]), loops.index(n.attrs["loop"]) + 1 if "loop" in n.attrs else 0)
            for n in keep}
    return Picture(nodes, sorted(edges, key=lambda e: ([x for x, *_ in nodes].index(e[1]), e[0])), boxes, band,
                   sorted(back))


def _band(model, scope) -> tuple:
    """Where a node's column lies, left to right: global nodes, then each plate of groups' (an
    inner plate right after its parent's), then the data rows' (and within each, a scan's body
    after the rest)."""
    groups = getattr(model, "groups", {}) or {}
    if scope is None:
        return (0,)
    if scope == "row":
        return (2,)
    path = []
    while scope is not None:
        path.insert(0, list(groups).index(scope))
        scope = groups[scope].parent
    return (1, *path)


def _scopes(model, an) -> dict:
    """node -> "row" (a data row's), a plate of groups' name, or None (global), as graph.scopes."""
    plates = getattr(model, "plates", {}) or {}
    if not plates:
        return {n: None for n in an.order}
    out = {}
    for n in an.order:
        if n in an.group_of:
            out[n] = an.group_of[n]
        elif n.kind == "input" or n.attrs.get("plate") in plates or any(out[i] == "row" for i in n.inputs):
            out[n] = "row"
        else:
            out[n] = None
    return out


def _shown_sources(n, keep) -> list:
    """The shown nodes n reads directly or through nodes that are not shown."""
    out, stack, seen = [], list(n.inputs), set()
    while stack:
        a = stack.pop()
        if a in seen:
            continue
        seen.add(a)
        if a in keep:
            out.append(a)
        else:
            stack.extend(a.inputs)
    return out


def _boxes(model, scope, keep) -> list:
    boxes = []
    plates = getattr(model, "plates", {}) or {}
    groups = getattr(model, "groups", {}) or {}
    for name, g in groups.items():
        depth, p = 0, g.parent
        while p is not None:
            depth, p = depth + 1, groups[p].parent
        inner = {k for k, v in groups.items() if _inside(groups, k, name)}
        boxes.append(Box(name, f"{name} · {g.size} (by {g.index})", {n.name for n in keep if scope[n] in inner},
                         depth))
    for name, size in plates.items():
        boxes.append(Box(name, f"{name} · N = {size if size is not None else 'rows of the data'}",
                         {n.name for n in keep if scope[n] == "row"}, len(groups)))
    for lp in getattr(model, "loops", ()):
        boxes.append(Box(f"scan_{lp.name}", f"scan {lp.name} × {lp.length}",
                         {n.name for n in keep if n.attrs.get("loop") == lp.name}, len(groups) + 1))
    return [b for b in sorted(boxes, key=lambda b: b.depth) if b.members]


def _inside(groups, k, name) -> bool:
    while k is not None:
        if k == name:
            return True
        k = groups[k].parent
    return False


# ---------------------------------------------------------------------------------- outputs
def to_dot(pic: Picture, title: str) -> str:
    """Graphviz source: a cluster per box (nested as the plates nest where they do)."""
    lines = [f'digraph "{_esc(title)}" {{', '  rankdir=TB; node [fontname="Helvetica", fontsize=11];']
    done = set()
    for b in pic.boxes:
        lines.append(f'  subgraph "cluster_{_esc(b.key)}" {{ label="{_esc(b.label)}"; labeljust=r; style=rounded;')
        for name in sorted(b.members - done):
            lines.append(f'    "{_esc(name)}";')
        done |= b.members
        lines.append("  }")
    for name, label, shape, fill in pic.nodes:
        lines.append(f'  "{_esc(name)}" [label="{_esc(label)}", shape={shape}, style=filled, fillcolor="{fill}"];')
    lines += [f'  "{_esc(a)}" -> "{_esc(b)}";' for a, b in pic.edges]
    lines += [f'  "{_esc(a)}" -> "{_esc(b)}" [style=dashed, constraint=false, label="next step"];' for a, b in pic.back]
    return "\n".join(lines + ["}"]) + "\n"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def layout(pic: Picture) -> dict:
    """name -> (x, y) of the node's box's top-left corner: rows by depth in the shown graph;
    columns in bands (global nodes, each plate of groups, the data rows: `_band`), each band as
    wide as its widest row, so a plate's box holds its nodes and no other."""
    import networkx as nx
    g = nx.DiGraph()
    g.add_nodes_from(name for name, *_ in pic.nodes)
    g.add_edges_from(pic.edges)
    order = {name: i for i, (name, *_) in enumerate(pic.nodes)}
    band = {name: pic.band.get(name, (0,)) for name in order}
    rows = [sorted(names, key=lambda n: order[n]) for names in nx.topological_generations(g)]
    bands = sorted(set(band.values()))
    width = {b: max(sum(band[n] == b for n in row) for row in rows) for b in bands}
    start, x = {}, PAD * 4
    for b in bands:
        start[b] = x
        x += width[b] * (W + GAP_X) + GAP_X
    pos = {}
    for r, row in enumerate(rows):
        used = {b: 0 for b in bands}
        for name in row:
            b = band[name]
            pos[name] = (start[b] + used[b] * (W + GAP_X), PAD * 4 + r * (H + GAP_Y))
            used[b] += 1
    return pos


def to_svg(pic: Picture, title: str) -> str:
    pos = layout(pic)
    width = max((x for x, _ in pos.values()), default=0) + W + PAD * 8
    height = max((y for _, y in pos.values()), default=0) + H + PAD * 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="Helvetica" '
           f'font-size="11">', f"<title>{html.escape(title)}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for b in pic.boxes:
        xs = [pos[m][0] for m in b.members]
        ys = [pos[m][1] for m in b.members]
        m = PAD * (len(pic.boxes) - pic.boxes.index(b))
        x0, y0, x1, y1 = min(xs) - m, min(ys) - m, max(xs) + W + m, max(ys) + H + m + 12
        out.append(f'<g class="plate" id="plate-{html.escape(b.key)}"><rect x="{x0}" y="{y0}" width="{x1 - x0}" '
                   f'height="{y1 - y0}" rx="8" fill="none" stroke="#777"/><text x="{x1 - 6}" y="{y1 - 5}" '
                   f'text-anchor="end" fill="#444">{html.escape(b.label)}</text></g>')
    for a, b in pic.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        out.append(f'<line class="edge" x1="{xa + W / 2}" y1="{ya + H}" x2="{xb + W / 2}" y2="{yb}" stroke="#555" '
                   f'marker-end="url(#arrow)"/>')
    for a, b in pic.back:   # up and around to the carry's box: its left side
        (xa, ya), (xb, yb) = pos[a], pos[b]
        out.append(f'<path class="back" d="M{xa} {ya + H / 2} C{xa - 2 * GAP_X} {ya + H / 2} {xb - 2 * GAP_X} '
                   f'{yb + H / 2} {xb} {yb + H / 2}" fill="none" stroke="#b26b00" stroke-dasharray="5,3" '
                   f'marker-end="url(#arrow)"><title>{html.escape(a)} sets {html.escape(b)} for the next step</title>'
                   f'</path>')
    for name, label, shape, fill in pic.nodes:
        x, y = pos[name]
        rx = H / 2 if shape == "ellipse" else 4
        first, *rest = label.split("\n")
        out.append(f'<g class="node" id="node-{html.escape(name)}"><rect x="{x}" y="{y}" width="{W}" height="{H}" '
                   f'rx="{rx}" fill="{fill}" stroke="#333"/>'
                   f'<text x="{x + W / 2}" y="{y + 18}" text-anchor="middle" font-weight="bold">{html.escape(first)}'
                   f'</text>' + "".join(f'<text x="{x + W / 2}" y="{y + 34}" text-anchor="middle">{html.escape(t)}'
                                        f'</text>' for t in rest) + "</g>")
    return "\n".join(out + ["</svg>"]) + "\n"


def to_png(pic: Picture, title: str, path: Path) -> None:
    """Graphviz's `dot` when installed, else matplotlib (the `plot` extra), else a ModelError."""
    dot = shutil.which("dot")
    if dot is not None:
        subprocess.run([dot, "-Tpng", "-o", str(path)], input=to_dot(pic, title), text=True, check=True,
                       capture_output=True)
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch
    except ImportError:
        raise ModelError(f"render: a PNG needs Graphviz's `dot` or matplotlib (pip install \"numba-ppl[plot]\"); "
                         f"or write {path.with_suffix('.svg').name} (SVG needs neither)") from None
    pos = layout(pic)
    width = max((x for x, _ in pos.values()), default=0) + W + PAD * 8
    height = max((y for _, y in pos.values()), default=0) + H + PAD * 8
    fig, ax = plt.subplots(figsize=(width / 72, height / 72), dpi=100)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    for a, b in pic.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        ax.annotate("", (xb + W / 2, yb), (xa + W / 2, ya + H), arrowprops=dict(arrowstyle="->", color="#555"))
    for a, b in pic.back:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        ax.annotate("", (xb, yb + H / 2), (xa, ya + H / 2), arrowprops=dict(
            arrowstyle="->", color="#b26b00", linestyle="--", connectionstyle="arc3,rad=-0.4"))
    for b in pic.boxes:
        xs, ys = [pos[m][0] for m in b.members], [pos[m][1] for m in b.members]
        m = PAD * (len(pic.boxes) - pic.boxes.index(b))
        x0, y0, x1, y1 = min(xs) - m, min(ys) - m, max(xs) + W + m, max(ys) + H + m + 12
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0", fill=False, ec="#777"))
        ax.text(x1 - 6, y1 - 5, b.label, ha="right", va="bottom", fontsize=8, color="#444")
    for name, label, shape, fill in pic.nodes:
        x, y = pos[name]
        ax.add_patch(FancyBboxPatch((x, y), W, H, boxstyle="round,pad=0,rounding_size=%d" % (H // 2 if shape ==
                                    "ellipse" else 4), fc=fill, ec="#333"))
        ax.text(x + W / 2, y + H / 2, label, ha="center", va="center", fontsize=8)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.1)   # the canvas cropped to the drawing
    plt.close(fig)


def render(prog, path=None, detail: bool = False) -> str:
    """Graphviz source of the picture; with `path`, also written there by its suffix: .dot / .gv
    (the source), .svg (drawn here), .png (Graphviz or matplotlib)."""
    pic = picture(prog, detail)
    title = prog.model.name
    source = to_dot(pic, title)
    if path is None:
        return source
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dot", ".gv"):
        path.write_text(source)
    elif suffix == ".svg":
        path.write_text(to_svg(pic, title))
    elif suffix == ".png":
        to_png(pic, title, path)
    else:
        raise ModelError(f"render: cannot write {path.name!r}: give a path ending in .svg, .png, .dot or .gv")
    return source
