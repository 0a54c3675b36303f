"""What a Program says about itself: the estimator table with its reasons (explain) and the
measured choice's measurements (autotune_report)."""
from __future__ import annotations

import textwrap

from ..language import declare

WIDTH = 100   # explain()'s lines wrap at this many characters


def _wrap(text: str, indent: str = "  ") -> list:
    """A line of prose as lines of at most WIDTH characters, continued with `indent`."""
    return textwrap.wrap(text, WIDTH, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [""]


def table(rows, indent: str = "") -> list:
    """rows (the first the header) as aligned lines ' | '-separated, the header underlined; the
    last column wraps so that no line is over WIDTH characters (continued below, the other
    columns blank)."""
    n = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(n - 1)]
    room = max(24, WIDTH - len(indent) - sum(w + 3 for w in widths))
    lines = []
    for r in rows:
        parts = textwrap.wrap(r[-1], room, break_long_words=False, break_on_hyphens=False) or [""]
        for k, part in enumerate(parts):
            cells = [c if k == 0 else "" for c in r[:-1]]
            lines.append(indent + " | ".join([*(c.ljust(w) for c, w in zip(cells, widths)), part]).rstrip())
    lines.insert(1, indent + "-+-".join("-" * w for w in widths + [min(room, max(len(r[-1]) for r in rows))]))
    return lines


class Explained:
    """Program's reports (a mixin of ppl.runtime.program.Program)."""

    weights_note = ""   # the stochastic derivatives' weights, said by the compiler (lowering/tangents.describe)

    def autotune_report(self) -> str:
        """The measured choice's table (policy "measured"): node | estimator | gradient variance
        +- its standard error | rows per data row | work (rows; timed for a program of its own) |
        score = variance x work | draws | verdict."""
        head = ("node", "estimator", "variance", "+- SE", "rows", "work", "score", "draws", "why")
        rows = [head]
        for r in self.autotune_table:
            if r["rows"]:
                rows.append((r["node"], r["estimator"] + (" *" if r["chosen"] else ""), f"{r['variance']:.4g}",
                             f"{r['se']:.2g}", str(r["rows"]), f"{r['work']:.3g}", f"{r['score']:.4g}",
                             str(r["draws"]), r["why"]))
            else:
                rows.append((r["node"], r["estimator"], "-", "-", "-", "-", "-", "-", r["why"]))
        return "\n".join(_wrap(f"measured (* chosen): {self.autotune_rule}") + table(rows))

    def render(self, path=None, detail: bool = False) -> str:
        """A picture of the model (as pyro.render_model): its inputs (observed ones shaded),
        parameters, random nodes with their law and estimator, costs, its plates as boxes around
        what is drawn in them, a scan's body once with its length. Returns the Graphviz source;
        `path` writes it by suffix: .svg (drawn by ppl, no library needed), .png (Graphviz's dot,
        else matplotlib: pip install "numba-ppl[plot]"), .dot / .gv (the source). detail=True
        shows every node (elementwise ops and constants too)."""
        from .render import render
        return render(self, path, detail)

    def explain(self) -> str:
        """A table: node | distribution | estimator | unbiased | why; then, per node whose estimator is
        biased, where its bias comes from; under the measured choice the measurements behind each
        choice (`autotune_report`)."""
        from ..estimators import REGISTRY
        rows = [("node", "distribution", "estimator", "unbiased", "why")]
        for node, (ch, info) in self.choices.items():
            est = REGISTRY[ch.estimator]
            opts = {k: v for k, v in ch.options.items() if k in ("baseline", "temperature")}
            name = ch.estimator + (f" ({', '.join(f'{k}={v}' for k, v in opts.items())})" if opts else "")
            steps = next((lp.length for lp in getattr(self.model, "loops", ()) if node in lp.body), None)
            label = node.name if steps is None else f"{node.name}[0..{steps - 1}]"   # once per step of a scan
            rows.append((label, info.dist.name, name, "yes" if est.unbiased else "no", ch.reason))
        lines = table(rows)
        for node, (ch, _) in self.choices.items():
            if REGISTRY[ch.estimator].bias:
                lines += _wrap(f"'{node.name}' ({ch.estimator}) is biased: {REGISTRY[ch.estimator].bias}")
        for name, S, how, absorbed, cost in getattr(self.model, "summed", ()):   # language/markov.py
            lines += _wrap(f"'{name}' is summed out over its {S} values {how}: its prior and the costs "
                           f"{', '.join(absorbed) or '(none)'} are the factors of the cost '{cost}'")
        plates = getattr(self.model, "plates", None)
        if plates:   # graph.scopes: which nodes are global, per group, per row; how each cost is weighted
            lines += _plates_lines(self.model, self.analysis)
        if self.weights_note:
            lines += _wrap(self.weights_note)
        if self.autotune_table:
            lines += ["", self.autotune_report(), ""]
        if declare.is_declared(self.model):
            terms = [("cost", "sign", "term")] + declare.terms(self.model)
            lines.append("costs derived from m.latent / m.observe (their sum is -ELBO: -log p(x, h) + log q(h | x)):")
            lines += table(terms, indent="  ")
        extra = f"step: {self.layout.lowering}; samples per data row: {self.samples}"
        if self.objective == "iwae":
            extra = (f"objective: iwae, -log (1/K sum_k exp(-C_k)) over the K = {self.samples} draws of each data "
                     f"row (C_k: the sum of draw k's costs)\n") + extra
        extra += f"; rows per data row: {self.samples * self.layout.S}"
        if self.layout.S > 1:
            extra += (f" ({self.layout.S} per draw: enumeration multiplies the rows by its support, the extra rows "
                      f"of antithetic, measure-valued and REBAR nodes add up)")
        return "\n".join(lines + [w for line in extra.split("\n") for w in _wrap(line)])


def _plates_lines(model, an) -> list:
    """The plates' part of explain(): what is drawn where and how each cost is weighted."""
    (pname, N), = model.plates.items()
    glob = [n.name for n in an.order if n in an.global_nodes]
    size = "N from the data fit trains on" if N is None else f"N = {N}"
    rows = [c.attrs["cost_name"] for c in an.cost_scale if c not in an.cost_group]
    out = _wrap(f"plate '{pname}' (the data rows, {size}): the per-row cost(s) {', '.join(rows) or '(none)'} "
                f"weighted N / batch (the loss estimates the data set's objective)")
    for g in getattr(model, "groups", {}).values():
        nodes = [n.name for n in an.order if an.group_of.get(n) == g.name and n.is_stochastic]
        terms = [c.attrs["cost_name"] for c, p in an.cost_group.items() if p == g.name]
        inside = f", inside plate '{g.parent}'" if g.parent else ""
        out += _wrap(f"plate '{g.name}' ({g.size} groups, each row's group '{g.index}'{inside}): node(s) "
                     f"{', '.join(nodes) or '(none)'} drawn once per group, shared by its rows; the term(s) "
                     f"{', '.join(terms) or '(none)'} counted once per group (N / batch / the group's rows, per row)")
    out += _wrap(f"global node(s) {', '.join(glob) or '(none)'} drawn once per step and sample, shared by every "
                 f"row, their terms counted once")
    return out
