"""The modelling language's nodes: the graph a model holds (`Graph`), node constructors and cost
heads. `ppl.Model` (ppl/dsl.py) is the `with` context over a Graph that adds the declarations
(m.latent / m.observe) and compile; the compiler's layers read Graphs and Nodes from here.

A model is a stochastic computation graph of row-wise nodes. Every node's value is a (rows, width)
array: rows are data rows (times samples); width is the node's number of units. Costs are per-row
scalars; the objective is E[sum of costs], averaged over data rows and minimised.

    with ppl.Model("sbn") as m:
        x = m.input("x", 64)
        h = ppl.Bernoulli("h", logits=ppl.Affine(x, 32, name="enc"))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("recon", ppl.bernoulli_nll(ppl.Affine(h, 64, name="dec"), target=x))
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

import numpy as np

from .. import distributions as D
from ..errors import ModelError
from ..ops import OPS
from ..validate import integer

_STACK: list["Graph"] = []   # the open `with ppl.Model(...)` blocks, innermost last
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _current(what: str) -> "Graph":
    if not _STACK:
        raise ModelError(f"{what} must be created inside `with ppl.Model(name) as m:`")
    return _STACK[-1]


@dataclass(eq=False)
class Node:
    """One vertex of the graph. `kind` names the op; `inputs` are the nodes it reads."""

    model: "Graph"
    kind: str
    name: str
    inputs: tuple = ()
    width: int = 0
    attrs: dict = field(default_factory=dict)

    # --- expression sugar: h1 + h2, 2 * z, z * z, z - 1 ---
    def __add__(self, other):
        return _binary("add", self, other)

    __radd__ = __add__

    def __mul__(self, other):
        return _binary("mul", self, other)

    __rmul__ = __mul__

    def __sub__(self, other):
        return _binary("add", self, -1.0 * other if isinstance(other, Node) else -float(other))

    def __rsub__(self, other):
        return _binary("add", -1.0 * self, other)

    def __neg__(self):
        return -1.0 * self

    def __truediv__(self, other):
        """x / y elementwise; x / c is x * (1 / c)."""
        if isinstance(other, Node):
            return _binary("div", self, other)
        c = _number(other, f"'{self.name}' / ...: the divisor")
        if c == 0.0:
            raise ModelError(f"'{self.name}' / 0: division by the constant zero")
        return (1.0 / c) * self

    def __rtruediv__(self, other):
        """c / x = c * x ** -1."""
        return _number(other, f"... / '{self.name}': the dividend") * self ** -1.0

    def __pow__(self, p):
        """x ** p, elementwise, for a constant number p (x < 0 with a non-integer p gives NaN,
        which the next distribution parameter check reports)."""
        if isinstance(p, Node):
            raise ModelError(f"'{self.name}' ** '{p.name}': the exponent must be a constant number; for x ** y "
                             f"with a node y write ppl.exp(y * log x) over a positive x")
        e = _number(p, f"'{self.name}' ** p: the exponent")
        return _make(self.model, "pow", _auto_name(self.model, "pow"), (self,), self.width, p=e)

    __iter__ = None   # not a sequence (h[:, lo:hi] below is a column slice, not item access)

    def __getitem__(self, key):
        """h[:, lo:hi] (or h[:, j]): columns lo..hi-1 of every row, as a node."""
        cols = key[1] if isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None) else None
        if isinstance(cols, (int, np.integer)) and not isinstance(cols, bool):
            j = int(cols) + (self.width if cols < 0 else 0)
            cols = slice(j, j + 1) if 0 <= j < self.width else None
        if not isinstance(cols, slice) or cols.step not in (None, 1) or not all(
                v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) for v in (cols.start, cols.stop)):
            raise ModelError(f"'{self.name}'[{key!r}]: index a node as h[:, lo:hi] or h[:, j] (every row, integer "
                             f"column bounds, step 1)")
        lo, hi = (self.width if v is None and d else 0 if v is None else int(v) + (self.width if v < 0 else 0)
                  for v, d in ((cols.start, False), (cols.stop, True)))
        if not 0 <= lo < hi <= self.width:
            raise ModelError(f"'{self.name}'[:, {cols.start}:{cols.stop}]: columns {lo}:{hi} are not a non-empty range "
                             f"within its width {self.width}")
        return _make(self.model, "slice", _auto_name(self.model, "slice"), (self,), hi - lo, lo=lo)

    def __repr__(self):
        return f"<{self.kind} '{self.name}' width={self.width}>"

    @property
    def is_stochastic(self) -> bool:
        """Whether the node draws random values (a node of a law)."""
        return self.kind in D.DISTRIBUTIONS

    @property
    def is_cost(self) -> bool:
        """Whether the node is one of the model's costs (m.cost, or derived by m.latent / m.observe)."""
        return self.attrs.get("is_cost", False)


def _auto_name(model: "Graph", prefix: str) -> str:
    model._counter[prefix] = model._counter.get(prefix, 0) + 1
    return f"{prefix}_{model._counter[prefix]}"


def _check_node(arg, what: str, owner: str) -> Node:
    if not isinstance(arg, Node):
        raise ModelError(f"{owner}: argument '{what}' must be a ppl node (got {type(arg).__name__}); "
                         f"wrap constants with ppl.param or use arithmetic on nodes")
    return arg


def _size(value, what: str, lo: int = 1) -> int:
    """A width or count: an int >= lo (bools and non-integral floats are refused, not truncated)."""
    return integer(value, what, lo=lo, hi=1 << 24)


def _make(model, kind, name, inputs, width, **attrs) -> Node:
    if getattr(model, "plate_open", None) is not None and kind in D.DISTRIBUTIONS:
        attrs.setdefault("plate", model.plate_open)   # drawn per data row or per group (graph.scopes)
    loop = getattr(model, "loop_open", None)
    if loop is not None and kind not in ("param", "input") and not loop.hoists(kind, inputs, attrs):
        attrs.setdefault("loop", loop.name)   # made in a scan's body: once per step (scan.Loop.hoists)
    model._add(node := Node(model, kind, name, tuple(inputs), int(width), attrs))
    return node


def _number(value, what: str) -> float:
    """A finite Python number, or a ModelError naming `what`."""
    try:
        c = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"{what} must be a node or a number, got {type(value).__name__}") from None
    if not np.isfinite(c):
        raise ModelError(f"{what} is {c}; give a finite number")
    return c


def broadcast(x: Node, width: int) -> Node:
    """x itself when it has `width` columns; a width-1 node repeated in `width` columns (what
    x + y, x * y, x / y, the cost heads and the laws' parameters do with a width-1 operand)."""
    if x.width == width or x.width != 1:
        return x
    return _make(x.model, "bcast", _auto_name(x.model, "bcast"), (x,), width)


def _widest(*nodes) -> list:
    """The nodes, width-1 ones broadcast to the widest (others are left for the width checks)."""
    w = max((n.width for n in nodes if isinstance(n, Node)), default=1)
    return [broadcast(n, w) if isinstance(n, Node) else n for n in nodes]


def _binary(kind: str, a, b) -> Node:
    if isinstance(a, Node) and isinstance(b, Node):
        a, b = _widest(a, b)
        if a.width != b.width:
            raise ModelError(f"'{kind}' of '{a.name}' (width {a.width}) and '{b.name}' (width {b.width}): "
                             f"widths must agree")
        return _make(a.model, kind, _auto_name(a.model, kind), (a, b), a.width)
    node, const = (a, b) if isinstance(a, Node) else (b, a)
    try:
        c = float(const)
    except (TypeError, ValueError):
        raise ModelError(f"'{kind}' with '{node.name}': the other operand must be a node or a number, "
                         f"got {type(const).__name__}") from None
    if not np.isfinite(c):
        raise ModelError(f"'{kind}' with '{node.name}': the constant is {c}; give a finite number (a NaN or inf "
                         f"constant would make every value it reaches non-finite)")
    scale, shift = (1.0, c) if kind == "add" else (c, 0.0)
    return _make(node.model, "scale_shift", _auto_name(node.model, "scale_shift"), (node,), node.width,
                 scale=scale, shift=shift)


class Graph:
    """A named stochastic computation graph, built inside a `with` block: its nodes, in the order
    they were made, and its costs (`ppl.Model` is the Graph users build)."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: dict[str, Node] = {}
        self.order: list[Node] = []
        self.costs: list[Node] = []
        self._counter: dict[str, int] = {}
        self.latents: dict = {}     # m.latent: node name -> declare.Latent (the guide's node and its prior)
        self.observed: dict = {}    # m.observe: cost name -> declare.Observed
        self.plates: dict = {}      # m.plate: the data rows' plate, name -> size N (dsl.Model.plate; graph.scopes)
        self.groups: dict = {}      # m.plate(name, size, index=): plates of groups, name -> Group
        self.plate_open = None      # the innermost plate whose `with` block is open
        self.plate_stack: list = []   # the open plates, outermost first
        self.loops: list = []       # ppl.scan: its loops (language.scan.Loop), in order
        self.loop_open = None       # the loop whose body is being declared

    def __enter__(self):
        _STACK.append(self)
        return self

    def __exit__(self, *exc):
        _STACK.remove(self)
        return False

    def _add(self, node: Node):
        if not isinstance(node.name, str) or not _NAME_RE.fullmatch(node.name):
            raise ModelError(f"node name {node.name!r} is not valid: use letters, digits and '_' "
                             f"(starting with a letter)")
        if node.name in self.nodes:
            raise ModelError(f"model '{self.name}': the name '{node.name}' is used twice; give each node "
                             f"a unique name")
        for i in node.inputs:
            if i.model is not self:
                raise ModelError(f"node '{node.name}' reads '{i.name}' from another model ('{i.model.name}')")
        self.nodes[node.name] = node
        self.order.append(node)

    # --- inputs and costs ---
    def input(self, name: str, width: int) -> Node:
        """A data input of `width` columns, bound at call time by name."""
        width = _size(width, f"input '{name}': width")
        return _make(self, "input", name, (), width)

    def cost(self, name: str, expr: Node) -> Node:
        """Add a per-row cost term; the objective is E[sum of all costs], minimised. `expr` is a cost
        head (ppl.bernoulli_nll, ppl.log_prob, ppl.total, ppl.blackbox, ...) or a node of width 1,
        taken as it is (ppl.total of it)."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ModelError(f"model '{self.name}': cost name {name!r} is not valid: use letters, digits "
                             f"and '_' (starting with a letter)")
        _check_node(expr, "expr", f"cost '{name}'")
        if not expr.attrs.get("is_head"):
            if expr.width != 1:
                raise ModelError(f"cost '{name}': {expr.kind} node '{expr.name}' has {expr.width} columns, not one "
                                 f"cost per row; sum them with ppl.total(...) or use a cost head such as "
                                 f"ppl.bernoulli_nll, ppl.log_prob or ppl.blackbox")
            expr = total(expr)   # a width-1 node is its own per-row cost
        if expr.is_cost:
            raise ModelError(f"cost '{name}': head '{expr.name}' is already the cost '{expr.attrs['cost_name']}'")
        if any(c.attrs["cost_name"] == name for c in self.costs):
            raise ModelError(f"model '{self.name}': two costs are named '{name}'; give each cost a unique name")
        expr.attrs["is_cost"] = True
        expr.attrs["cost_name"] = name
        self.costs.append(expr)
        return expr


# --------------------------------------------------------------------------- parameters and layers
def param(name: str, width: int, init: float | np.ndarray = 0.0) -> Node:
    """A free parameter vector of `width` values, the same for every row (e.g. a prior's logits)."""
    m = _current(f"ppl.param('{name}')")
    width = _size(width, f"param '{name}': width")
    try:
        init = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"param '{name}': init must be a number or an array of numbers, "
                         f"got {type(init).__name__}") from None
    if not np.all(np.isfinite(init)):
        raise ModelError(f"param '{name}': init must be finite numbers, got {init!r}")
    if init.ndim == 0:
        init = np.full(int(width), float(init))
    if init.shape != (int(width),):
        raise ModelError(f"param '{name}': init has shape {init.shape}, expected ({width},)")
    return _make(m, "param", name, (), width, init=init)


def const(value, width: int, name: str | None = None) -> Node:
    """A constant node of `width` columns, every entry `value` (not trained). Numbers given
    where a distribution or cost expects a node become one: Normal("z", loc, 0.5)."""
    m = _current(f"ppl.const({value!r})")
    return _const(m, value, _size(width, f"const '{name or ''}': width"), "const", name)


def _const(model, value, width, owner, name=None) -> Node:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"{owner}: a constant must be a number, got {type(value).__name__}") from None
    if isinstance(value, bool) or not np.isfinite(v):
        raise ModelError(f"{owner}: a constant must be a finite number, got {value!r}")
    return _make(model, "const", name if name is not None else _auto_name(model, "const"), (), width, value=v)


def _constants(owner: str, positive=(), unit=(), law=None, **args) -> list:
    """The arguments, numbers replaced by constant nodes of the width of the node arguments
    (which must agree; an argument that is neither is left for _check_node to report). A
    constant for a `positive` argument must be > 0, for a `unit` one within [0, 1], for a law's
    parameter what the law's entry asks (law.constant_problem)."""
    nodes = [v for v in args.values() if isinstance(v, Node)]
    if not nodes:
        return list(args.values())
    out = []
    for k, v in args.items():
        if isinstance(v, (int, float, np.integer, np.floating)):
            v = _const(nodes[0].model, v, nodes[0].width, f"{owner}: {k}")
            c = v.attrs["value"]
            need = ("> 0" if k in positive and not c > 0 else "within [0, 1]" if k in unit and not 0 <= c <= 1
                    else law.constant_problem(k, c) if law is not None else None)
            if need:
                raise ModelError(f"{owner}: {k} is the constant {c!r}; it must be {need}")
        out.append(v)
    return out


def concat(nodes, name: str | None = None) -> Node:
    """The columns of several nodes side by side: width = the sum of their widths."""
    if not isinstance(nodes, (list, tuple)) or not nodes:
        raise ModelError(f"concat: give a non-empty list of nodes, got {type(nodes).__name__}")
    nodes = [_check_node(x, f"nodes[{i}]", "concat") for i, x in enumerate(nodes)]
    m = nodes[0].model
    return _make(m, "concat", name if name is not None else _auto_name(m, "concat"), nodes,
                 sum(x.width for x in nodes))


def Affine(x: Node, out: int, name: str | None = None) -> Node:
    """x @ W + b with W of shape (x.width, out); parameters are '<name>.W' and '<name>.b'."""
    _check_node(x, "x", "Affine")
    out = _size(out, f"Affine '{name or ''}': out")
    m = x.model
    return _make(m, "affine", name if name is not None else _auto_name(m, "affine"), (x,), out)


def _activation(kind):
    def act(x: Node, name: str | None = None) -> Node:
        _check_node(x, "x", kind)
        return _make(x.model, kind, name if name is not None else _auto_name(x.model, kind), (x,), x.width)

    act.__name__ = act.__qualname__ = kind
    act.__doc__ = OPS[kind].doc
    return act


# ppl.sigmoid, ppl.tanh, ...: one constructor per elementwise op of the table (ppl/ops.py)
OP_NODES = {kind: _activation(kind) for kind, op in OPS.items() if op.unary}
globals().update(OP_NODES)


def rowsum(x: Node, name: str | None = None) -> Node:
    """The sum of a node's columns, as a width-1 node (e.g. an energy or a score)."""
    return _make(_check_node(x, "x", "rowsum").model, "rowsum", name or _auto_name(x.model, "rowsum"), (x,), 1)


def logsumexp(x: Node, name: str | None = None) -> Node:
    """log sum_j exp(x_j) of a node's columns as a width-1 node, without overflow; VJP: the softmax."""
    return _make(_check_node(x, "x", "logsumexp").model, "logsumexp", name or _auto_name(x.model, "logsumexp"), (x,), 1)


def rowdot(a: Node, b: Node, name: str | None = None) -> Node:
    """Row-wise dot product sum_j a_j b_j, as a width-1 node (e.g. a skip-gram score)."""
    return rowsum(a * b, name=name)


# --------------------------------------------------------------------------- stochastic units
def _stochastic(kind: str, name: str, params: dict, width: int, **attrs) -> Node:
    spec = D.DISTRIBUTIONS[kind]
    for p in spec.params:
        _check_node(params.get(p), p, f"{spec.name} '{name}'")
    nodes = [params[p] for p in spec.params]
    model = nodes[0].model
    return _make(model, kind, name, nodes, width, **attrs)


def law_arguments(law: D.Distribution, owner: str, args: tuple, kw: dict):
    """The arguments of a law's constructor (ppl.<Law>, ppl.dist.<Law>) checked: (the entry a variant
    keyword or the parameter given chooses, {param: value}, classes or None). Errors name `owner`."""
    alts = D.alternatives(law)   # exactly one of them is given (logits / probs), None is none
    kw = {k: v for k, v in kw.items() if not (v is None and k in alts)}
    linked = [key for key in law.variants if key in kw]
    kind = law.kind
    for key, choices in law.variants.items():
        value = kw.pop(key, next(iter(choices)))
        if not isinstance(value, str) or value not in choices:
            raise ModelError(f"{owner}: {key} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
        kind = choices[value]
    given = sorted(alts & (set(law.params[:len(args)]) | set(kw)))
    if alts and len(given) != 1:
        raise ModelError(f"{owner}: give exactly one of {' or '.join(sorted(alts))}, got "
                         f"{' and '.join(given) if given else 'neither'}")
    if given and given[0] in law.by_param:
        if linked:
            raise ModelError(f"{owner}: {linked[0]}= applies to {' or '.join(sorted(alts - {given[0]}))}, not to "
                             f"{given[0]}")
        kind = law.by_param[given[0]]
    entry = D.DISTRIBUTIONS[kind]
    classes = kw.pop("classes", None) if entry.grouped else None
    if len(args) > len(entry.params):
        raise ModelError(f"{owner}: takes the parameters {', '.join(entry.params)}, got {len(args)} values")
    params = dict(zip(entry.params, args))
    for p in entry.params:
        if p in kw:
            if p in params:
                raise ModelError(f"{owner}: {p} is given twice")
            params[p] = kw.pop(p)
    if kw:
        raise ModelError(f"{owner}: unknown argument(s) {', '.join(sorted(kw))}; it takes "
                         f"{', '.join(D.parameter_names(law))}{', classes' if entry.grouped else ''}"
                         f"{''.join(', ' + k for k in law.variants)}")
    missing = [p for p in entry.params if p not in params]
    if missing:
        raise ModelError(f"{owner}: missing parameter(s) {', '.join(missing)}")
    widths = {v.width for v in params.values() if isinstance(v, Node)}   # by default one group of their width
    if entry.grouped and classes is None and len(widths) != 1:
        raise ModelError(f"{owner}: classes (the number of categories per group) is required")
    return entry, params, (widths.pop() if entry.grouped and classes is None else classes)


def _law_node(law: D.Distribution):
    """The DSL constructor of a law: ppl.<Law>(name, *params, [classes=K], [variant keywords]).
    A number for a parameter is a constant of the width of the node parameters (which must
    agree); a grouped law's node has classes columns per group."""
    title = law.constructor

    def make(name: str, *args, **kw) -> Node:
        owner = f"{title} '{name}'"
        entry, params, classes = law_arguments(law, owner, args, kw)
        values = _constants(owner, law=entry, **dict(zip(params, _widest(*params.values()))))
        for p, v in zip(entry.params, values):
            _check_node(v, p, owner)
        nodes = dict(zip(entry.params, values))
        first = values[0]
        for p, v in nodes.items():
            if v.width != first.width:
                raise ModelError(f"{owner}: {entry.params[0]} '{first.name}' has width {first.width} but {p} "
                                 f"'{v.name}' has width {v.width}; they must agree")
        attrs = {}
        if entry.grouped:
            k = _size(classes, f"{owner}: classes", lo=2)
            if first.width % k:
                raise ModelError(f"{owner}: {entry.params[0]} width {first.width} is not a multiple of "
                                 f"classes={classes} (>= 2); use Affine(..., groups * classes)")
            attrs["K"] = k
        return _stochastic(entry.kind, name, nodes, first.width, **attrs)

    make.__signature__ = D.law_signature(law, lead=("name",))
    make.__name__ = make.__qualname__ = title
    make.__doc__ = law.doc
    return make


# ppl.Bernoulli, ppl.Normal, ...: one constructor per law with a constructor name (ppl/laws/)
LAW_NODES = {law.constructor: _law_node(law) for law in D.DISTRIBUTIONS.values() if law.constructor}
globals().update(LAW_NODES)


# --------------------------------------------------------------------------- cost heads
def _head(kind: str, inputs, owner_model=None, **attrs) -> Node:
    m = owner_model or inputs[0].model
    return _make(m, kind, _auto_name(m, kind), inputs, 1, is_head=True, **attrs)


def _same_width(owner, **nodes):
    widths = {k: v.width for k, v in nodes.items()}
    if len(set(widths.values())) != 1:
        desc = ", ".join(f"{k} '{nodes[k].name}' width {w}" for k, w in widths.items())
        raise ModelError(f"{owner}: widths must agree ({desc})")


def bernoulli_nll(logits: Node, target: Node) -> Node:
    """-log Bernoulli(target | sigmoid(logits)), summed over columns (a number: a constant)."""
    logits, target = _constants("bernoulli_nll", unit=("target",), **dict(zip(("logits", "target"),
                                                                          _widest(logits, target))))
    _check_node(logits, "logits", "bernoulli_nll")
    _check_node(target, "target", "bernoulli_nll")
    _same_width("bernoulli_nll", logits=logits, target=target)
    return _head("bernoulli_nll", (logits, target))


def gaussian_nll(loc: Node, scale: Node, target: Node) -> Node:
    """-log N(target | loc, scale^2), summed over columns (the Gaussian likelihood, negated); a
    number for loc, scale or target is a constant."""
    loc, scale, target = _constants("gaussian_nll", positive=("scale",),
                                    **dict(zip(("loc", "scale", "target"), _widest(loc, scale, target))))
    for k, v in (("loc", loc), ("scale", scale), ("target", target)):
        _check_node(v, k, "gaussian_nll")
    _same_width("gaussian_nll", loc=loc, scale=scale, target=target)
    return _head("gaussian_nll", (loc, scale, target))


def categorical_nll(logits: Node, target: Node, classes: int | None = None) -> Node:
    """-log Categorical(target | softmax(logits)) per group of `classes` columns (default: one
    group), summed over the groups: the likelihood of a one-hot target (a Categorical node's
    value, or one-hot data), negated. The same head as softmax_xent, under its likelihood name."""
    return softmax_xent(logits, target, classes)


def softmax_xent(logits: Node, target: Node, classes: int | None = None) -> Node:
    """Softmax cross-entropy per group of `classes` columns (default: one group)."""
    _check_node(logits, "logits", "softmax_xent")
    _check_node(target, "target", "softmax_xent")
    _same_width("softmax_xent", logits=logits, target=target)
    k = logits.width if classes is None else _size(classes, "softmax_xent: classes")
    if logits.width % k:
        raise ModelError(f"softmax_xent: logits width {logits.width} is not a multiple of classes={k}")
    return _head("softmax_xent", (logits, target), K=k)


def gaussian_kl(loc: Node, scale: Node, loc2: Node | None = None, scale2: Node | None = None) -> Node:
    """Closed-form KL(N(loc, scale^2) || N(loc2, scale2^2)); against N(0, I) when loc2/scale2 are omitted."""
    if (loc2 is None) != (scale2 is None):
        raise ModelError("gaussian_kl: give both loc2 and scale2, or neither (for the standard normal)")
    nodes = {"loc": loc, "scale": scale} if loc2 is None else {"loc": loc, "scale": scale, "loc2": loc2,
                                                               "scale2": scale2}
    nodes = dict(zip(nodes, _constants("gaussian_kl", positive=("scale", "scale2"),   # numbers: constants
                                       **dict(zip(nodes, _widest(*nodes.values()))))))
    for k, v in nodes.items():
        _check_node(v, k, "gaussian_kl")
    _same_width("gaussian_kl", **nodes)
    return _head("gaussian_kl_std" if loc2 is None else "gaussian_kl", tuple(nodes.values()))


def log_prob(node: Node) -> Node:
    """log p(value | parameters) of a stochastic node (e.g. the entropy term log q(h|x))."""
    _check_node(node, "node", "log_prob")
    if not node.is_stochastic:
        raise ModelError(f"log_prob: '{node.name}' is a {node.kind} node, not a stochastic unit")
    return _head("log_prob", (node,) + node.inputs)


def total(x: Node) -> Node:
    """The row sum of a node's values, as a cost (e.g. ppl.total(z * z) for E[z^2])."""
    _check_node(x, "x", "total")
    return _head("total", (x,))


def _user_fns(owner, **fns):
    for what, f in fns.items():
        if f is not None and not hasattr(f, "py_func"):
            raise ModelError(f"{owner}: {what} must be a numba @njit function (decorate it with @numba.njit), "
                             f"got {type(f).__name__}")
    try:
        return "".join(inspect.getsource(f.py_func) for f in fns.values() if f is not None)
    except (OSError, TypeError):
        return repr(tuple(fns.values()))


def layer(fn, inputs, width: int, vjp=None, name: str | None = None) -> Node:
    """A layer from the user's @njit row functions, usable anywhere in the graph (CPU target):
    fn(row_1, ..., row_n, out) writes the layer's row (`width` values) into `out` from its input
    rows; vjp(row_1, ..., row_n, out, gout, g_1, ..., g_n) WRITES d(gout . out) / d row_i into
    g_i (g_i holds stale values when called: a VJP that adds into it is wrong; ppl.check_grad
    checks both). Without vjp no gradient flows through the layer (the random nodes above it then
    get score-function estimators; a parameter path into it is an error)."""
    if isinstance(inputs, Node):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise ModelError(f"layer '{name or ''}': inputs must be a node or a non-empty list of nodes, got "
                         f"{type(inputs).__name__}")
    inputs = [_check_node(x, f"inputs[{i}]", "layer") for i, x in enumerate(inputs)]
    if fn is None:
        raise ModelError("layer: fn must be a numba @njit function (decorate it with @numba.njit), got None")
    src = _user_fns(f"layer '{name or ''}'", fn=fn, vjp=vjp)
    m = inputs[0].model
    width = _size(width, f"layer '{name or ''}': width")
    return _make(m, "user_layer", name if name is not None else _auto_name(m, "layer"), inputs, width,
                 fn=fn, grad=vjp, source=src)


def blackbox(fn, inputs, grad=None) -> Node:
    """A user @njit cost `fn(row_1, ..., row_n) -> float`, called once per row with each input
    node's row (1D arrays). Optional `grad(row_1, ..., row_n, g_1, ..., g_n)` WRITES d cost /
    d row_i into the g_i arrays (they hold stale values when called; ppl.check_grad checks it);
    without it no gradient flows through the black box, so the compiler gives the random nodes
    that feed it score-function estimators."""
    if isinstance(inputs, Node):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise ModelError(f"blackbox: inputs must be a node or a list of nodes, got {type(inputs).__name__}")
    if fn is None:
        raise ModelError("blackbox: fn must be a numba @njit function (decorate it with @numba.njit), got None")
    inputs = [_check_node(x, f"inputs[{i}]", "blackbox") for i, x in enumerate(inputs)]
    if not inputs:
        raise ModelError("blackbox: give at least one input node")
    for f, what in ((fn, "fn"), (grad, "grad")):
        if f is not None and not hasattr(f, "py_func"):
            raise ModelError(f"blackbox: {what} must be a numba @njit function (decorate it with "
                             f"@numba.njit), got {type(f).__name__}")
    try:
        src = inspect.getsource(fn.py_func) + (inspect.getsource(grad.py_func) if grad is not None else "")
    except (OSError, TypeError):
        src = repr(fn)
    return _head("blackbox", tuple(inputs), fn=fn, grad=grad, source=src)
