"""The array lowering: the forward-sample / cost / backward pass of a graph as the body of ONE
generated step function, one kernel call per node and pass.

The generated step has the signature

    step(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode) -> loss

theta/grad: flat parameter and gradient vectors (named views are reshaped slices);
state: non-gradient state (running baselines, fixed temperatures); ws2/ws1: preallocated 2D
and 1D workspaces; inputs: tuple of (B, width) data arrays; B: data rows; seed, t: the
counter-based RNG key and step; mode 0 = forward only, 1 = forward and gradient.
Rows are laid out r = ((i * K) + k) * S + c (data row, sample, enumeration configuration); a
layer is stored on one row per class of a data row's rows that hold equal values (_data_rows).

The lowering passes (compiler.PASSES) are methods: plan_rows, requires_grad, lower_forward,
lower_backward, render. The walk of lower_forward / lower_backward is shared with the row-fused
lowering (ppl/scalar_lowering.py, a subclass overriding the per-node hooks). Layer ops are
rendered from the op table (ppl/ops.py) or their rule (ppl/lowering_rules.py), stochastic nodes
by their estimators (ppl/estimators/) through the context estimators/base.Context declares.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from . import graph as G
from .distributions import DISTRIBUTIONS
from .errors import ModelError
from .nodes import Graph, Node
from .estimators import REGISTRY
from .ops import OPS, render
from .lowering_rules import ARRAY_RULES


def named_source(source: str) -> str:
    """A step's source with its inlined views written by the names its head comment gives them
    (`# p_q_W = R_.flat_view(theta, 0, (64, 32))`): the form to read, or to search in tests. Not
    compiled."""
    defs = dict(m.groups() for m in re.finditer(r"^ {4}# (\w+) = (.+)$", source, re.M))
    if not defs:
        return source
    by_expr = {expr: name for name, expr in defs.items()}
    pat = re.compile("|".join(re.escape(e) for e in sorted(by_expr, key=len, reverse=True)))
    out = []
    for line in source.splitlines():
        out.append(line if line.lstrip().startswith("#") else pat.sub(lambda m: by_expr[m.group(0)], line))
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


@dataclass
class Layout:
    """Where everything of a program lives; the Program allocates from it."""

    params: list = field(default_factory=list)   # (name, offset, shape, init ndarray)
    n_theta: int = 0
    state: list = field(default_factory=list)    # (name, offset, size, init)
    n_state: int = 0
    ws2: list = field(default_factory=list)      # (name, rows, width): rows 'R', 'D' (data rows), 'Dn' (n per data row) or an int
    ws1: list = field(default_factory=list)      # (name, rows) of 1D buffers
    inputs: list = field(default_factory=list)   # input node names, in argument order
    costs: list = field(default_factory=list)    # (cost name, ws1 index of its per-row values)
    consts: dict = field(default_factory=dict)   # ws1 index -> the constant values it holds (row maps)
    values: dict = field(default_factory=dict)   # node name -> ('ws2' | 'input', index, its layout: Lowering._data_rows)
    rw_index: int = 0
    S: int = 1
    lowering: str = "array kernels"


def _ident(name: str) -> str:
    return name.replace(".", "_")


class Lowering:
    """Emits the fused step. Estimators call the helper methods below."""

    prelude = ""   # functions the step calls, emitted before it (the row-fused lowering's)
    merge_rows = True   # compute layers once per class of equal rows (_data_rows)

    def __init__(self, model: Graph, an: G.Analysis, choices: dict, samples: int, rng: np.random.Generator,
                 objective: str = "elbo"):
        self.model, self.an, self.choices, self.samples = model, an, choices, samples
        self.objective = objective   # "elbo", or "iwae": the bound over each data row's K draws
        self.totals = self.ell = self.uw = None   # IWAE (lower_loss): rows' cost totals, bound, 1 / B weights
        self.rng = rng
        self.L = Layout()
        self.fwd: list[str] = []
        self.bwd: list[str] = []
        self.head: list[str] = []   # unpacking of params, state and workspaces
        self.globals: dict = {}
        self.section = self.fwd
        self.owner = None           # the node whose code is being emitted
        self.emitted: list = []     # (owner node, line) of every emitted line (target checks)
        self.noise_of: dict = {}    # stochastic node -> its base noise buffer(s) (record_noise)
        self.scratch: dict = {}     # (estimator name, node) -> what an estimator's forward leaves for later
        self._names: dict = {}
        self._Lcache: dict = {}
        self.stream_base = {n: 16 * i for i, n in enumerate(x for x in an.order if x.is_stochastic)}
        self.E2 = self.buf2("E2_", 0, rows=0)
        self.E1 = "E1_"
        self.head.append("E1_ = ws1[0]")
        self.L.ws1.append(("E1_", 0))
        self.rw = self.buf1("rw_")
        self.L.rw_index = len(self.L.ws1) - 1
        # cw, the cost cotangent seeds: the row weights rw, except where an estimator's extra rows
        # re-evaluate the graph below its node (REBAR's control variate): it seeds those rows'
        # cost cotangents differently from their (zero) loss weight
        self.rebar_nodes = [n for n in an.order if n in choices and REGISTRY[choices[n][0].estimator].evaluates_below]
        self.cw = self.buf1("cw_") if self.rebar_nodes else self.rw
        self.noise_kind: dict = {}
        self.zero_rows = self.buf1("zeros_")
        self.log_prob_weights: dict = {}   # node -> cost weights its estimator's VJP absorbs
        self.kept: dict = {}               # cost head -> buffer its forward keeps for its VJP
        self.kept_rep: set = set()         # keys of `kept` whose buffer has one row per data row (_rep kernels)
        self.op_params: dict = {}          # layer node -> [(param view, its gradient view)] (ops.OPS)
        self.cbuf: dict = {}               # cost head -> its per-row cost buffer
        self.R = "R"
        self.configs = range(1)   # configurations whose code the walk emits per node (row-fused: S)
        self.cfg = 0

    def generate(self) -> str:
        """The lowering passes in order (compiler.PASSES runs them one by one): the step's body."""
        self.plan_rows()
        self.requires_grad()
        self.lower_forward()
        self.lower_backward()
        return self.render()

    def _estimator(self, node: Node):
        return REGISTRY[self.choices[node][0].estimator]

    # ----- helpers estimators use (the context they see: estimators/base.py lists it)
    def record_noise(self, node: Node, noise, kind: str | None = None):
        """Record the base noise a node's draw used (a buffer, or a tuple of buffers) and its
        kind, for the node's own backward and for estimators above it (REBAR relaxes it)."""
        self.noise_of[node] = noise
        if kind is not None:
            self.noise_kind[node] = kind

    def emit(self, line: str):
        self.section.append(line)
        self.emitted.append((self.owner, line))

    def emit_at_start(self, line: str):
        """A line run once at the top of the step, before the forward pass."""
        self.fwd.insert(0, line)
        self.emitted.append((self.owner, line))

    def buf2(self, name: str, width, rows="R") -> str:
        name = _ident(name)
        self.L.ws2.append((name, rows, int(width)))
        self.head.append(f"{name} = ws2[{len(self.L.ws2) - 1}]")
        return name

    def buf1(self, name: str, rows="R") -> str:
        name = _ident(name)
        self.L.ws1.append((name, rows))
        self.head.append(f"{name} = ws1[{len(self.L.ws1) - 1}]")
        return name

    def state_slot(self, name: str, size: int, init=0.0) -> int:
        off = self.L.n_state
        self.L.state.append((name, off, size, np.full(size, init)))
        self.L.n_state += size
        return off

    def state_value(self, name: str, init: float) -> str:
        ident = "st_" + _ident(name)
        if ident not in self._names:
            off = self.state_slot(name, 1, init)
            self.head.append(f"{ident} = R_.flat_view(state, {off}, (1,))")
            self._names[ident] = off
        return ident

    def param(self, name: str, shape: tuple, init) -> tuple:
        size = int(np.prod(shape))
        off = self.L.n_theta
        init = np.broadcast_to(np.asarray(init, dtype=np.float64), shape).copy()
        self.L.params.append((name, off, tuple(shape), init))
        self.L.n_theta += size
        p, gp = "p_" + _ident(name), "gp_" + _ident(name)
        shp = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
        self.head.append(f"{p} = R_.flat_view(theta, {off}, ({shp}))")
        self.head.append(f"{gp} = R_.flat_view(grad, {off}, ({shp}))")
        return p, gp

    def v(self, node: Node) -> str:
        """The node's values on all R rows (for a node stored on fewer rows: its copy on all
        of them, made on first use)."""
        return self.vat(node, self.FULL)

    def g(self, node: Node):
        """The cotangent of the node's values on all R rows, or None when none is needed."""
        return self.gat(node, self.FULL)

    def vB(self, node: Node) -> str:
        """The node's values where they are stored (its layout's rows: `lay`)."""
        return self.vat(node, self.lay.get(node, self.FULL))

    def gB(self, node: Node):
        return self.gat(node, self.lay.get(node, self.FULL))

    def g_or_empty(self, node: Node) -> str:
        """The node's cotangent on the rows of the node being lowered (`here`), or E2."""
        return self.gat(node, self.here) or self.E2

    def vat(self, node: Node, P: tuple) -> str:
        """The node's values on the rows of layout P (a reader's): its own buffer when it is
        stored on P, else a copy made on first use (R_.repeat_rows from one row per data row,
        R_.gather_rows from another layout; P refines the node's row classes `sig`)."""
        Q = self.lay.get(node, self.FULL)
        own = ("vB_" if Q != self.FULL else "v_") + node.name
        if P == Q:
            return own
        name = self._at_name("v", node, P)
        if (node, P) not in self.vcopy:
            self.vcopy.add((node, P))
            self.buf2(name, node.width, rows=self._rows(P))
            if max(Q) == 0:
                self.emit(f"R_.repeat_rows({own}, {_ndist(P)}, {name})")
            else:
                self.emit(f"R_.gather_rows({own}, {_ndist(Q)}, {self.row_map(_rowmap(P, Q))}, {name})")
        return name

    def gat(self, node: Node, P: tuple):
        """The cotangent of the node's values on the rows of layout P (a reader's), or None when
        none is needed; one not stored on P is summed into the node's own (R_.fold_rows,
        R_.fold_into) first thing in the node's backward pass."""
        if not self.req.get(node) or node.kind == "input":
            return None
        Q = self.lay.get(node, self.FULL)
        if P == Q:
            return ("gB_" if Q != self.FULL else "g_") + node.name
        if P not in self.gcopy.get(node, ()):
            raise RuntimeError(f"internal: no cotangent of '{node.name}' planned on rows {P}")
        return self._at_name("g", node, P)

    def _at_name(self, prefix: str, node: Node, P: tuple) -> str:
        if P == self.FULL:
            return f"{prefix}_{node.name}"
        return f"{prefix}{self.layout_ids.setdefault(P, len(self.layout_ids))}_{node.name}"

    def _rows(self, P: tuple) -> str:
        """A buffer's rows on layout P, as Layout.ws2 names them: R, D (one per data row) or Dn."""
        if P == self.FULL:
            return "R"
        return "D" if max(P) == 0 else f"D{_ndist(P)}"

    def row_map(self, t: tuple) -> str:
        """A 1D workspace buffer holding the row map t (Layout.consts: the program fills it once).
        The kernels take it as an array, not a tuple: a tuple's length would compile them anew
        for each length."""
        if t not in self.row_maps:
            self.row_maps[t] = self.buf1(f"map{len(self.row_maps)}_", rows=len(t))
            self.L.consts[len(self.L.ws1) - 1] = np.array(t, dtype=np.float64)
        return self.row_maps[t]

    def cw_at(self, P: tuple) -> str:
        """The cost cotangent seeds cw summed over each row class of P (a cost stored on P)."""
        if P == self.FULL:
            return self.cw
        if P not in self.cw_folded:
            name = self.cw_folded[P] = self.buf1(f"cw{self.layout_ids.setdefault(P, len(self.layout_ids))}_",
                                                 rows=self._rows(P))
            self.emit(f"R_.fold1({self.cw}, {self.row_map(P)}, {_ndist(P)}, {name})")
        return self.cw_folded[P]

    def dist(self, node: Node):
        return DISTRIBUTIONS[node.kind]

    def param_values(self, node: Node) -> list:
        return [self.v(p) for p in node.inputs]

    def param_grads(self, node: Node) -> list:
        return [self.g_or_empty(p) for p in node.inputs]

    def call(self, kernel: str, ins: list, outs: list, node: Node | None = None):
        k = [str(node.attrs["K"])] if node is not None and "K" in node.attrs else []
        self.emit(f"K_.{kernel}({', '.join([*ins, *k, *outs])})")

    def log_prob_vjp(self, node: Node, weights: str, gx: str, params: bool = True):
        """Row-weighted VJP of log p(node | params) into the params' gradients (params=False: not
        into them) and gx, from the sigma(logits) a log_prob cost kept in the forward pass when
        there is one."""
        d = self.dist(node)
        keep = self.kept.get(("log_prob", node))
        gp = self.param_grads(node) if params else [self.E2] * len(node.inputs)
        if keep is not None and ("log_prob", node) in self.kept_rep:
            (a,) = node.inputs
            self.emit(f"K_.{d.kernels['log_prob_kept_bwd']}_rep({self.per_data_row(a)}, {self.v(node)}, "
                      f"{keep}, {weights}, {', '.join(gp)}, {gx})")
        elif keep is not None:
            self.emit(f"K_.{d.kernels['log_prob_kept_bwd']}({', '.join(self.param_values(node))}, {self.v(node)}, "
                      f"{keep}, {weights}, {', '.join(gp)}, {gx})")
        else:
            self.call(d.kernels["log_prob_bwd"], [*self.param_values(node), self.v(node)], [weights, *gp, gx], node)

    def _row_constant(self, kernel: str, logits: Node) -> tuple:
        """(kernel, logits argument): a parameter node's rows are all its vector, so a Bernoulli
        cost of it takes the vector and the `_const` kernel (softplus and sigma once per column);
        a node of the data-row sub-graph has one row per data row, repeated on the cost's rows
        (`here`), so the cost takes those B rows and the `_rep` kernel (softplus and sigma once per data
        row, the kept sigma B rows: `kept_rows`)."""
        if logits.kind == "param":
            return kernel + "_const", "p_" + _ident(logits.name)
        rep = self.per_data_row(logits)
        return (kernel + "_rep", rep) if rep is not None else (kernel, self.vat(logits, self.here))

    def per_data_row(self, node: Node):
        """`vB, reps`, the `_rep` kernels' arguments, when the node's values are computed once
        per data row (the data-row sub-graph) and read on reps > 1 rows per data row (those of
        the node being lowered, `here`); else None."""
        return f"{self.vB(node)}, {_ndist(self.here)}" if node in self.inv and max(self.here) > 0 else None

    def reads_rep(self, logits: Node) -> bool:
        """Whether a cost of these logits takes the `_rep` kernels (`_row_constant`)."""
        return logits.kind != "param" and self.per_data_row(logits) is not None

    def kept_rows(self, logits: Node) -> str:
        """Rows of the sigma buffer a `_row_constant` kernel keeps: "D" (data rows) for `_rep`."""
        return "D" if self.reads_rep(logits) else self._rows(self.here)

    def emit_positive_checks(self, node: Node, is_positive, is_finite=None):
        """Raise in the step, naming the node, the parameter and the fix, when a parameter of the
        node's distribution is NaN or +-inf, or one that must be > 0 (a Normal's scale) is not;
        is_positive(p) / is_finite(p) give the tests' source. Without this a NaN would vanish into
        a hard sample (noise + NaN > 0 is False) or a select; every estimator reads the values
        checked here, so one check per node covers all of them."""
        d = self.dist(node)
        for pname, p in zip(d.params, node.inputs):
            if pname in d.positive:
                self.emit(f"if not {is_positive(p)}:")
                self.emit(f"    raise ModelError_(\"{d.name} '{node.name}': {pname} '{p.name}' has values <= 0 or NaN; "
                          f"make it positive, e.g. {pname}=ppl.softplus(...) or ppl.exp(...)\")")
            if is_finite is not None:
                self.emit(f"if not {is_finite(p)}:")
                self.emit(f"    raise ModelError_(\"{d.name} '{node.name}': {pname} '{p.name}' has NaN or inf values; "
                          f"check the parameters (prog.params) and the layers feeding '{p.name}' (overflow, a "
                          f"learning rate too high)\")")

    def noise(self, node: Node, kind: str, k: int = 0, width=None) -> str:
        """Base noise of a node, one draw per drawn row (i, k): every enumeration / antithetic
        configuration of a drawn row shares it (common random numbers; ARM's pairs need it).
        `width` columns (default the node's: Gumbel-Rao takes several draws per unit)."""
        name = self.buf2(f"n{k}_{node.name}", node.width if width is None else width)
        stream = self.stream_base[node] + k
        if self.S == 1:
            self.emit(f"N_.fill_{kind}({name}, seed, {stream}, t, row0)")
        else:
            self.emit(f"N_.fill_{kind}({name}[:{name}.shape[0] // {self.S}], seed, {stream}, t, row0)")
            self.emit(f"R_.expand_rows({name}, {self.S})")
        return name

    def downstream_L(self, node: Node) -> str:
        costs = self.an.downstream_costs[node]
        key = frozenset(c.name for c in costs)
        if key not in self._Lcache:
            L = self.buf1(f"L_{node.name}")
            self.emit(f"R_.zero1({L})")
            for c in costs:
                self.emit(f"R_.add_rows(c_{c.name}, {L})")
            self._Lcache[key] = L
        return self._Lcache[key]

    def learning_signal(self, node: Node) -> tuple:
        """(L, weights) of a score-function node: the ELBO's is the sum of the costs downstream of
        the node per row, weighted by rw; the IWAE bound's, the row's bound ell_i (every cost of
        the draw enters it through the weights), each row weighted 1 / B."""
        if self.objective == "iwae":
            return self.ell, self.uw
        return self.downstream_L(node), self.rw

    def vimco_baseline(self) -> str:
        """IWAE: VIMCO's leave-one-out baseline of every row (computed once, shared by the nodes)."""
        if "vimco" not in self._Lcache:
            b = self._Lcache["vimco"] = self.buf1("bvimco_")
            self.emit(f"R_.vimco_baseline({self.totals}, {self.samples}, {self.S}, {b})")
        return self._Lcache["vimco"]

    def baseline_inputs(self, node: Node) -> list:
        return self.an.ancestors_inputs[node]

    # ----- pass: plan rows
    def plan_rows(self):
        """The row layout r = ((i K) + k) S + c, c a mixed-radix number: one digit per enumerated
        or antithetic node (its configurations, a product with the other digits), and one digit
        that every REBAR node (an estimator that `evaluates_below`) shares, whose rows are a sum,
        not a product: the drawn row (local index 0), then each node's control-variate rows after
        the previous node's. `cv_slot[n] = (off, span)`: configuration c >= 1 of n sits at local
        index off + c - 1 of that digit's span rows; `row_digit[n] = (stride, size)` of every node's
        digit. A REBAR node's estimate reads its own rows and the drawn row only (every other row
        has weight rw = 0 for it), so the product's other rows -- two nodes' control variates at
        once -- changed no expectation: below a REBAR node another one is relaxed in those rows,
        so its configuration rows there were equal and their seeds (1, eta, -eta ...) summed to 1;
        beside it, they only added zero-mean terms. Two REBAR layers take 5 rows instead of 9 (9
        instead of 25 with eta and the temperature trained)."""
        self.enum_stride, self.cv_slot, self.row_digit, S = {}, {}, {}, 1
        self.sizes = sizes = {n: REGISTRY[self.choices[n][0].estimator].expansion(self.choices[n][1], self.choices[n][0].options)
                 for n in self.an.order if n in self.choices}
        self.shared = shared = [n for n in self.rebar_nodes if sizes[n] > 1]
        span = 1 + sum(sizes[n] - 1 for n in shared)
        for n in self.an.order:
            size = sizes.get(n, 1)
            if size <= 1:
                continue
            if n in shared:
                if n is shared[0]:
                    T, off = S, 1
                    S *= span
                    for m in shared:
                        self.enum_stride[m], self.row_digit[m], self.cv_slot[m] = T, (T, span), (off, span)
                        off += sizes[m] - 1
                continue
            self.enum_stride[n], self.row_digit[n] = S, (S, size)
            S *= size
        if S > 1 << 16:
            raise ModelError(f"enumeration multiplies every row by {S} configurations (> 65536); "
                             f"enumerate fewer or smaller nodes")
        self.S = self.L.S = S
        self.reps = self.samples * S
        self._data_rows()

    def _data_rows(self):
        """Which rows of a data row each node is computed on: its layout `lay[n]`, a tuple that
        maps each of the data row's K S rows to the row holding its value.

        A node's rows that must hold equal values form its row classes `sig[n]` (the same form
        of tuple): a layer's values are equal on two rows when all its inputs' are; a stochastic
        node's when both rows draw it the same way (the same sample k, its own configuration
        digit, its inputs' classes; on a REBAR node's rows relaxed by it or by a REBAR node above,
        never), if its estimator `shares_rows`. Data inputs, parameters and what depends on them
        only have one class (the data-row sub-graph, `inv`); a layer below a stochastic node has
        K S, unless configurations repeat an upstream value: two REBAR layers' rows 0, 3, 4 hold
        the same upper draw, as do two DisARM layers' pairs of lower configurations, and XLA's
        common subexpressions would merge them too.

        A layer and a cost head (but log_prob: its estimators read its rows) are computed on one
        row per class; a stochastic node on all K S rows. A reader on other rows reads a copy
        (vat: R_.repeat_rows or R_.gather_rows) and its cotangents are summed back (gat:
        R_.fold_rows or R_.fold_into); a cost's rows are spread to all R (R_.gather1) for the
        loss and the estimators, and the cost cotangents cw summed per class (cw_at: R_.fold1).
        The encoder of a model with 4 samples and an antithetic pair runs on B rows, not 8 B."""
        self._one_layout()
        KS, S = self.reps, self.S
        if KS == 1:
            return
        g = self.an.graph
        T, span = self.row_digit[self.shared[0]] if self.shared else (1, 1)
        for n in self.an.order:
            if not self.merge_rows and n.kind != "input":   # every node on every row
                self.sig[n] = self.FULL
                continue
            if not n.is_stochastic:
                self.sig[n] = _canon([tuple(self.sig[p][r] for p in n.inputs) for r in range(KS)])
                continue
            est = self._estimator(n)
            if not (est.shares_rows if est.shares_rows is not None else not est.passes_value_grad):
                self.sig[n] = self.FULL
                continue
            relaxing = [m for m in self.shared if m is n or m.name in G.nx.ancestors(g, n.name)]
            own = self.row_digit.get(n) if n not in self.shared else None
            keys = []
            for r in range(KS):
                k, c = divmod(r, S)
                j = (c // T) % span
                if any(self.cv_slot[m][0] <= j < self.cv_slot[m][0] + self.sizes[m] - 1 for m in relaxing):
                    keys.append(("relaxed", r))
                    continue
                c0 = c - j * T if n in self.shared else c   # a REBAR node's hard value is its drawn row's
                digit = (c // own[0]) % own[1] if own else 0
                keys.append((k, digit, tuple(self.sig[p][k * S + c0] for p in n.inputs)))
            self.sig[n] = _canon(keys)
        for n in self.an.order:
            if n.kind == "input":
                self.lay[n] = self.D1
            elif n.is_stochastic or (n.attrs.get("is_head") and (n.kind == "log_prob" or n.kind in ARRAY_RULES
                                                                 and n.kind != "bernoulli_nll")):
                self.lay[n] = self.FULL
            elif n.kind != "param":
                self.lay[n] = self.sig[n]
        for n in self.an.order:   # a parameter row: on its readers' rows if they agree, else once per data row
            if n.kind == "param":
                at = {self.lay[self.model.nodes[k]] for k in g.successors(n.name)}
                self.lay[n] = at.pop() if len(at) == 1 else self.D1
        self.inv = {n for n in self.an.order if self.lay[n] == self.D1}
        for n in self.an.order:   # the cotangent copies: one per layout a reader reads the node on
            for k in g.successors(n.name):
                P = self.lay[self.model.nodes[k]]
                if P != self.lay[n]:
                    self.gcopy.setdefault(n, set()).add(P)

    def _one_layout(self):
        """Every node on all K S rows of a data row (the row-fused lowering's layout)."""
        KS = self.reps
        self.FULL, self.D1 = tuple(range(KS)), (0,) * KS
        self.here = self.FULL
        self.lay, self.sig, self.inv = {}, {}, set()
        self.vcopy, self.gcopy, self.cw_folded, self.layout_ids, self.cfull, self.row_maps = set(), {}, {}, {}, {}, {}

    # ----- pass: requires grad
    def requires_grad(self):
        """req[node]: whether a cotangent of the node's value reaches a parameter; rebar_anc:
        the REBAR-like nodes above each stochastic node (their rows relax it)."""
        self.rebar_anc = {}
        for n in self.an.order:
            if n.is_stochastic:
                anc = [s for s in self.rebar_nodes if s.name in G.nx.ancestors(self.an.graph, n.name)]
                if anc:
                    if self.an.blocked_by.get(n):
                        raise ModelError(f"'{n.name}' lies below the REBAR node '{anc[0].name}' but a path from it "
                                         f"goes through the gradient-free black box '{self.an.blocked_by[n]}'; "
                                         f"use 'relax' for '{anc[0].name}'")
                    self.rebar_anc[n] = anc
        req = {}
        for n in self.an.order:
            if n.kind == "input":
                req[n] = False
            elif n.kind in ("param", "affine"):
                req[n] = True
            elif n.is_stochastic:
                est = REGISTRY[self.choices[n][0].estimator]
                req[n] = (est.passes_value_grad or n in self.rebar_anc) and any(req[p] for p in n.inputs)
            else:
                req[n] = any(req[p] for p in n.inputs)
        self.req = req
        for c in self.model.order:
            if c.kind in OPS and OPS[c.kind].user and c.attrs["grad"] is None:
                what, fix = (("black box", "blackbox(..., grad=...)") if c.kind == "blackbox"
                             else ("layer", "ppl.layer(..., vjp=...)"))
                for x in c.inputs:
                    if req[x]:
                        raise ModelError(
                            f"{what} '{c.name}' has no gradient but its input '{x.name}' depends on "
                            f"parameters through a differentiable path; give {fix} or put a "
                            f"stochastic node (estimated by 'score') between the parameters and the {what}")

    # ----- passes: lower forward, lower backward (the walk both lowerings share; the per-node
    # hooks allocate / forward_node / lower_loss / zero_cotangents / backward_node are theirs)
    def lower_forward(self):
        """Every node's storage and forward code in topological order (once per configuration
        the lowering unrolls), then the loss."""
        for n in self.an.order:
            self.section, self.owner, self.here = self.fwd, n, self.lay.get(n, self.FULL)
            self.allocate(n)
            for self.cfg in self.configs:
                self.forward_node(n)
        self.cfg, self.here = 0, self.FULL
        self.section, self.owner = self.fwd, None
        self.lower_loss()

    def lower_backward(self):
        """Zero the cotangents, then every node's backward code in reverse topological order
        (node-major, configuration-minor: a node's cotangents are complete before it reads them)."""
        self.section, self.owner = self.bwd, None
        self.zero_cotangents()
        for n in reversed(self.an.order):
            self.section, self.owner, self.here = self.bwd, n, self.lay.get(n, self.FULL)
            for self.cfg in self.configs:
                self.backward_node(n)
        self.cfg, self.here = 0, self.FULL

    def lower_loss(self):
        if self.rebar_nodes:
            self.emit(f"B_.copy1({self.rw}, {self.cw})")
            for n in self.rebar_nodes:
                self._estimator(n).seed_weights(self, n)
        tot = self.totals = self.buf1("tot_")
        self.emit(f"R_.zero1({tot})")
        if self.objective == "iwae":
            # -C of a draw is its log weight; rw becomes the cotangents of the draws' totals
            for c in self.model.costs:
                self.emit(f"R_.add_rows(c_{c.name}, {tot})")
            self.ell, self.uw = self.buf1("ell_"), self.buf1("uw_")
            self.emit(f"R_.config_weights({self.S}, 0, 0, 1.0 / B, {self.uw})")
            self.emit(f"loss = R_.iwae_bound({tot}, {self.samples}, {self.S}, {self.rw}, {self.ell})")
            return
        self.emit("loss = 0.0")
        for c in self.model.costs:
            self.emit(f"loss += R_.weighted_total({self.rw}, c_{c.name}, {tot})")

    def zero_cotangents(self):
        self.emit("R_.zero1(grad)")
        for n in self.an.order:
            if self.gB(n) is not None and not n.attrs.get("is_head"):
                self.emit(f"R_.zero2({self.gB(n)})")
                for P in sorted(self.gcopy.get(n, ())):
                    self.emit(f"R_.zero2({self.gat(n, P)})")

    def allocate(self, n: Node):
        """The node's input slot, value / cotangent buffers, layer parameters or cost rows."""
        P = self.lay.get(n, self.FULL)
        pre, rows = ("vB_" if P != self.FULL else "v_"), self._rows(P)
        if n.kind == "input":
            j = len(self.L.inputs)
            self.L.inputs.append(n.name)
            self.head.append(f"{pre}{n.name} = inputs[{j}]")
            self.L.values[n.name] = ("input", j, P)
            return
        if n.attrs.get("is_head"):
            self.cbuf[n] = c = self.buf1(f"c_{n.name}")
            self.L.costs.append((n.attrs["cost_name"], len(self.L.ws1) - 1))
            if P != self.FULL:   # computed once per row class, spread to all rows (forward_node)
                self.cbuf[n] = self.buf1(f"cB_{n.name}", rows=rows)
                self.cfull[n] = c
            return
        self.buf2(f"{pre}{n.name}", n.width, rows=rows)
        self.L.values[n.name] = ("ws2", len(self.L.ws2) - 1, P)
        if self.req[n]:
            self.buf2(f"{'gB_' if P != self.FULL else 'g_'}{n.name}", n.width, rows=rows)
            for Q in sorted(self.gcopy.get(n, ())):
                self.buf2(self._at_name("g", n, Q), n.width, rows=self._rows(Q))
        if n.kind in OPS and not OPS[n.kind].head and not OPS[n.kind].user:
            self.op_params[n] = [self.param(n.name + q.suffix, q.shape(n), q.init(n, self.rng))
                                 for q in OPS[n.kind].params]

    def forward_node(self, n: Node):
        k = n.kind
        if k == "input":
            return
        P = self.here
        ins = [self.vat(i, P) for i in n.inputs]
        out = self.vB(n) if not n.attrs.get("is_head") else None
        if k in ARRAY_RULES:
            ARRAY_RULES[k].forward(self, n, ins, self.cbuf.get(n, out))
        elif k in OPS and not OPS[k].head:
            op = OPS[k]
            if op.fwd:
                self.emit(render(op.fwd, out=out, **self._op_values(n, ins)))
            off = 0
            for x, xj in zip(n.inputs, ins) if op.fwd_each else ():
                self.emit(render(op.fwd_each, xj=xj, off=off, out=out))
                off += x.width
        elif n.is_stochastic:
            self.emit_positive_checks(n, lambda p: f"R_.all_positive({self.v(p)})",
                                      lambda p: f"R_.all_finite2({self.vB(p)})")
            ch, _ = self.choices[n]
            REGISTRY[ch.estimator].forward(self, n, ch.options)
        elif n.attrs.get("is_head"):
            self.emit_template_fwd(n, ins, self.cbuf[n])
        else:  # pragma: no cover - the DSL builds no other kinds
            raise ModelError(f"node '{n.name}': unknown kind {k!r}")
        if n.attrs.get("is_head") and P != self.FULL:
            self.emit(f"R_.gather1({self.cbuf[n]}, {_ndist(P)}, {self.row_map(P)}, {self.cfull[n]})")
        if n in self.rebar_anc:   # the estimator above owns what its rows do to this node
            self._estimator(self.rebar_anc[n][0]).forward_below(self, n, self.rebar_anc[n])

    def emit_template_fwd(self, n: Node, ins: list, c: str):
        """A cost head's forward from its op-table template (c: its cost rows)."""
        self.emit(render(OPS[n.kind].fwd, c=c, **self._op_values(n, ins)))

    def emit_template_bwd(self, n: Node, ins: list, gins: list):
        """A cost head's VJP from its op-table template, seeded by the cost cotangents cw."""
        gs = {f"g{j}": g for j, g in enumerate(gins)}
        self.emit(render(OPS[n.kind].bwd, cw=self.cw_at(self.here), **gs, **self._op_values(n, ins)))

    def backward_node(self, n: Node):
        k = n.kind
        if k == "input":
            return
        Q = self.here
        if self.gB(n) is not None:   # the cotangents its readers left on their rows, summed into its own
            for P in sorted(self.gcopy.get(n, ())):
                if max(Q) == 0:
                    self.emit(f"R_.fold_rows({self.gat(n, P)}, {_ndist(P)}, {self.gB(n)})")
                else:
                    self.emit(f"R_.fold_into({self.gat(n, P)}, {self.row_map(_rowmap(P, Q))}, {_ndist(Q)}, {self.gB(n)})")
        ins = [self.vat(i, Q) for i in n.inputs]
        gins = [self.g_or_empty(i) for i in n.inputs]
        if n.attrs.get("is_head"):
            if all(gi == self.E2 for gi in gins):
                return
            if k in ARRAY_RULES:
                ARRAY_RULES[k].backward(self, n, ins, gins, self.cw_at(Q), self.cbuf[n], self._rows(Q))
            else:
                self.emit_template_bwd(n, ins, gins)
            return
        if n.is_stochastic:
            if n in self.rebar_anc:
                self._estimator(self.rebar_anc[n][0]).backward_below(self, n, self.rebar_anc[n])
            ch, _ = self.choices[n]
            REGISTRY[ch.estimator].backward(self, n, ch.options)
            return
        self._backward_kinds(n, ins, gins, self.gB(n), self.vB(n), self._rows(Q))

    def _backward_kinds(self, n: Node, ins: list, gins: list, gout, out: str, rows: str):
        """VJP of a deterministic layer: gout (its value cotangent) into gins."""
        if gout is None:
            return
        if n.kind in ARRAY_RULES:
            ARRAY_RULES[n.kind].backward(self, n, ins, gins, gout, out, rows)
            return
        op = OPS[n.kind]
        off = 0
        for x, gj in zip(n.inputs, gins) if op.bwd_each else ():
            if gj != self.E2:
                self.emit(render(op.bwd_each, gout=gout, off=off, gj=gj))
            off += x.width
        if op.bwd is None or (op.bwd_if_input_grad and gins[0] == self.E2):
            return
        gs = {f"g{j}": g for j, g in enumerate(gins)}
        self.emit(render(op.bwd, out=out, gout=gout, **gs, **self._op_values(n, ins)))

    def _op_values(self, n: Node, ins: list) -> dict:
        """The names an op's array templates read: input values, parameters, attributes."""
        vals = dict(n.attrs)
        vals.update({f"x{j}": x for j, x in enumerate(ins)})
        for j, (p, gp) in enumerate(self.op_params.get(n, ())):
            vals[f"p{j}"], vals[f"gp{j}"] = p, gp
        return vals

    # ----- pass: render
    def render(self, inline_views: bool = True) -> str:
        """The step's body (the compiler adds the target's header and signature).

        With `inline_views` (the CPU target) the workspace and input tuples are unpacked once,
        at the top, into the names the head gives their items; the parameter and state views
        are written where they are used, not bound to names, and kept in a comment that names
        them. A name bound at the top is a variable live across every kernel call's error
        branch; with ~100 such views LLVM's mem2reg spent a third of a new graph's compile on
        them, and they cost nothing to remake (R_.flat_view). A tuple item is another matter:
        Numba keeps the tuple argument in one stack slot and reads an item by loading the whole
        tuple (42 arrays, ~400 machine words, in a two-layer nonlinear SBN) and taking one
        field, so items read where they are used left LLVM ~100 such loads to split (0.4 s of
        SROA and InstCombine; BENCHMARKS.md, "Compile time of a new graph")."""
        K = self.samples
        lines = _drop_unread_repeats([f"R_.fill({self.rw}, 1.0 / (B * {K}))", *self.fwd, "if mode == 0:",
                                      "    return loss", *self.bwd, "return loss"])
        body = []
        if self.L.n_theta or self.L.n_state:   # the views are not bounds-checked (R_.flat_view)
            n, m = self.L.n_theta, self.L.n_state
            body += [f"    if theta.shape[0] != {n} or grad.shape[0] != {n} or state.shape[0] < {m}:",
                     f"        raise ModelError_(\"step: theta and grad must have {n} entries and state at least {m} \"",
                     "                          \"(this program's prog.theta, prog.grad_buffer, prog.state)\")"]
        if inline_views and self.head:
            defs = dict(line.split(" = ", 1) for line in self.head)
            items, views = {t: [] for t in ("ws2", "ws1", "inputs")}, {}
            for name, expr in defs.items():
                m = re.fullmatch(r"(ws2|ws1|inputs)\[(\d+)\]", expr)
                if m:
                    items[m.group(1)].append((int(m.group(2)), name))
                else:
                    views[name] = expr
            for tup, named in items.items():
                if not named:
                    continue
                named.sort()
                if [i for i, _ in named] != list(range(len(named))):   # every item named, in order
                    raise AssertionError(f"lowering: the head does not name every item of {tup}")
                body += _unpack([name for _, name in named], tup)
            if views:
                pat = re.compile(r"\b(" + "|".join(map(re.escape, views)) + r")\b")
                lines = [pat.sub(lambda m: views[m.group(1)], line) for line in lines]
                body += ["    # " + f"{name} = {expr}" for name, expr in views.items()]
        else:
            body += ["    " + line for line in self.head]
        body += ["    " + line for line in lines]
        return "\n".join(body)


def _unpack(names: list, tup: str, width: int = 100) -> list:
    """`(a, b, ...) = tup` as indented lines of at most `width` characters."""
    out, line = [], "    ("
    for name in names:
        piece = f"{name}, "
        if len(line) + len(piece) > width and line.strip() != "(":
            out.append(line.rstrip())
            line = "     "
        line += piece
    out.append(line.rstrip() + f") = {tup}")
    return out


def _canon(keys: list) -> tuple:
    """Row classes from each row's key: the index of the key's first row among the distinct keys."""
    first = {}
    return tuple(first.setdefault(k, len(first)) for k in keys)


def _ndist(P: tuple) -> int:
    """Rows per data row of layout P."""
    return max(P) + 1


def _rowmap(P: tuple, Q: tuple) -> tuple:
    """For each row of layout P, the row of layout Q holding its value (P refines Q's classes
    where the value is defined): Q of the first of the data row's rows in P's class."""
    first = {}
    for r, c in enumerate(P):
        first.setdefault(c, r)
    return tuple(Q[first[c]] for c in range(_ndist(P)))


_REPEAT = re.compile(r"\s*R_\.(?:repeat_rows\([^,]+, [^,]+|gather_rows\(\w+, \d+, \w+), (\w+)\)$")


def _drop_unread_repeats(lines: list) -> list:
    """Drop the copies of a data-row node's values to its drawn rows (`R_.repeat_rows` into its
    twin `v_<name>`) that no other line reads: a twin is made for every data-row node with a
    per-sample reader, and some readers take the B rows themselves (the `_rep` kernels)."""
    text = "\n".join(lines)
    out = []
    for line in lines:
        m = _REPEAT.match(line)
        if m and len(re.findall(rf"\b{m.group(1)}\b", text)) == 1:
            continue
        out.append(line)
    return out

