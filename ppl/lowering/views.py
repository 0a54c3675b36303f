"""A node's values and cotangents on the rows a reader reads them on: its own buffer, or a
copy made on first use (`values_on`) and cotangents summed back (`cotangent_on`); row maps and
folded seeds."""
from __future__ import annotations

from contextlib import nullcontext as _same

import numpy as np

from ..calls import KERNELS, call, ref
from ..estimators.protocol import NO_GRAD
from ..language.nodes import Node
from .layout import _ident, _ndist, _rowmap


class Views:
    def _init_views(self):
        self.vcopy: set = set()     # (node, layout) of the value copies made (values_on)
        self.layout_ids: dict = {}  # layout -> its number in buffer names
        self.row_maps: dict = {}    # row map (tuple) -> the 1D buffer holding it
        self.cw_folded: dict = {}   # (layout, scale) -> the cost cotangents summed per class (cw_at)

    def v(self, node: Node) -> str:
        """The node's values on all R rows (for a node stored on fewer rows: its copy on all
        of them, made on first use)."""
        return self.values_on(node, self.plan.FULL)

    def g(self, node: Node):
        """The cotangent of the node's values on all R rows, or None when none is needed."""
        return self.cotangent_on(node, self.plan.FULL)

    def stored_values(self, node: Node) -> str:
        """The node's values where they are stored (its layout's rows: `lay`)."""
        return self.values_on(node, self.plan.lay.get(node, self.plan.FULL))

    def stored_cotangent(self, node: Node):
        return self.cotangent_on(node, self.plan.lay.get(node, self.plan.FULL))

    def g_or_empty(self, node: Node) -> str:
        """The node's cotangent on the rows of the node being lowered (`here`), or NO_GRAD."""
        return self.cotangent_on(node, self.builder.here) or NO_GRAD

    def values_on(self, node: Node, P: tuple) -> str:
        """The node's values on the rows of layout P (a reader's): its own buffer when it is
        stored on P, else a copy made on first use (rows.repeat_rows from one row per data row,
        rows.gather_rows from another layout; P refines the node's row classes `sig`)."""
        Q = self.plan.lay.get(node, self.plan.FULL)
        own = ("vB_" if Q != self.plan.FULL else "v_") + node.name
        if P == Q:
            return own
        name = self._at_name("v", node, P)
        if (node, P) not in self.vcopy:
            self.vcopy.add((node, P))
            with self.outside() if self.an.loop_of(node) is None else _same():   # once, before a loop
                self.buf2(name, node.width, rows=self._rows(P))
                if max(Q) == 0:
                    self.emit(call(KERNELS.rows.repeat_rows, own, _ndist(P), name))
                else:
                    self.emit(call(KERNELS.rows.gather_rows, own, _ndist(Q), self.row_map(_rowmap(P, Q)), name))
        return name

    def cotangent_on(self, node: Node, P: tuple):
        """The cotangent of the node's values on the rows of layout P (a reader's), or None when
        none is needed; one not stored on P is summed into the node's own (rows.fold_rows,
        rows.fold_into) first thing in the node's backward pass."""
        if not self.needs.req.get(node) or node.kind == "input":
            return None
        Q = self.plan.lay.get(node, self.plan.FULL)
        if P == Q:
            return ("gB_" if Q != self.plan.FULL else "g_") + node.name
        if P not in self.plan.gcopy.get(node, ()):
            raise RuntimeError(f"internal: no cotangent of '{node.name}' planned on rows {P}")
        return self._at_name("g", node, P)

    def _at_name(self, prefix: str, node: Node, P: tuple) -> str:
        if P == self.plan.FULL:
            return f"{prefix}_{node.name}"
        return f"{prefix}{self.layout_ids.setdefault(P, len(self.layout_ids))}_{node.name}"

    def _rows(self, P: tuple) -> str:
        """A buffer's rows on layout P, as Layout.ws2 names them: R, D (one per data row) or Dn."""
        if P == self.plan.FULL:
            return "R"
        return "D" if max(P) == 0 else f"D{_ndist(P)}"

    def row_map(self, t: tuple) -> str:
        """A 1D workspace buffer holding the row map t (Layout.consts: the program fills it once).
        The kernels take it as an array, not a tuple: a tuple's length would compile them anew
        for each length."""
        if t not in self.row_maps:
            self.row_maps[t] = self.buf1(f"map{len(self.row_maps)}_", rows=len(t))
            self.builder.L.consts[len(self.builder.L.ws1) - 1] = np.array(t, dtype=np.float64)
        return self.row_maps[t]

    def head_cw(self, head: Node) -> str:
        """A cost head's cotangent seeds on all rows: cw, or N cw for a per-row cost of a plate."""
        return self.cw_at(self.plan.FULL, self.head_scale(head))

    def cw_at(self, P: tuple, scale: float = 1.0) -> str:
        """The cost cotangent seeds cw summed over each row class of P (a cost stored on P); with
        scale N (a per-row cost of a plate) those of N cw (`cw_plate`)."""
        cw = self.cw_seed(scale)
        if isinstance(scale, tuple):   # a per-group term (Walk.head_scale)
            key, pre = (P, scale), f"cwg_{scale[1]}_"
        else:
            key, pre = (P, "cw") if scale == 1.0 else ((P, "plate"), "cwp")   # (key, prefix)
        if P == self.plan.FULL:
            return cw
        if key not in self.cw_folded:
            name = self.cw_folded[key] = self.buf1(f"{pre}{self.layout_ids.setdefault(P, len(self.layout_ids))}_",
                                                   rows=self._rows(P))
            self.emit(call(KERNELS.rows.fold1, cw, self.row_map(P), _ndist(P), name))
        return self.cw_folded[key]

    def _row_constant(self, kernel: str, logits: Node) -> tuple:
        """(kernel, logits arguments): a parameter node's rows are all its vector, so a Bernoulli
        cost of it takes the vector and the `_const` kernel (softplus and sigma once per column);
        a node of the data-row sub-graph has one row per data row, repeated on the cost's rows
        (`here`), so the cost takes those B rows and the `_rep` kernel (softplus and sigma once per data
        row, the kept sigma B rows: `kept_rows`)."""
        kernel = ref(kernel)
        if logits.kind == "param":
            return kernel.variant("_const"), ("p_" + _ident(logits.name),)
        rep = self.per_data_row(logits)
        if rep is not None:
            return kernel.variant("_rep"), rep
        return kernel, (self.values_on(logits, self.builder.here),)

    def per_data_row(self, node: Node):
        """`stored_values, reps`, the `_rep` kernels' arguments, when the node's values are computed once
        per data row (the data-row sub-graph) and read on reps > 1 rows per data row (those of
        the node being lowered, `here`); else None."""
        here = self.builder.here
        return (self.stored_values(node), _ndist(here)) if node in self.plan.inv and max(here) > 0 else None

    def reads_rep(self, logits: Node) -> bool:
        """Whether a cost of these logits takes the `_rep` kernels (`_row_constant`)."""
        return logits.kind != "param" and self.per_data_row(logits) is not None

    def kept_rows(self, logits: Node) -> str:
        """Rows of the sigma buffer a `_row_constant` kernel keeps: "D" (data rows) for `_rep`."""
        return "D" if self.reads_rep(logits) else self._rows(self.builder.here)
