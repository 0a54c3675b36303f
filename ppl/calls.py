"""Kernel calls as records: what the step's IR holds for every call of a kernel.

`KERNELS.<alias>.<name>` is a `KernelRef`: a kernel of one of the modules the step binds
(`MODULES`: the alias the step's code uses -> the CPU module of ppl.kernels; the CUDA header binds
the same aliases to the CUDA twins, ppl/targets.py). `Call(kernel, args)` is one call: the
reference and its arguments, each a typed record: a workspace buffer (`Buf`: its rows and
width), a view of theta, grad or state (`View`), an argument of the step (`StepArg`), a constant
(a number, `Const`), the marker of a skipped gradient (estimators.protocol.NoGrad), `Flat(buffer)`
(a one-column buffer passed as its 1D view), `Column(buffer)` (a 1D buffer as a one-column array)
or `Head(buffer, parts)` (its first rows); or the text of an expression an estimator passes. The
step's builder (lowering/ir.StepBuilder.typed) resolves an argument given by name to its record.
A `Call` prints its line (`str`); every pass that asks which kernel a line calls, what it
passes or which names it holds and where (`Call.names`: what the printer writes views in by)
reads the record (lowering/ir.py, the row-fused lowering, the CUDA target check), never the text.

Templates (the op table's `fwd` / `bwd`, a law's `enum`, REBAR's and RELAX's per-law kernels) are
call records with field arguments, `KERNELS.rebar.cv_flags.on("stride", ..., "flag")` (Template);
`render(template, **values)` gives the `Call`. A user's estimator may still give a template as
text, `alias.kernel({field}, ...)`, which `template(text)` reads once.
"""
from __future__ import annotations

import importlib
import io
import keyword
import string
import tokenize

# the step's module aliases -> the CPU modules of ppl.kernels they are bound to
MODULES = {"core": "cpu.core", "noise": "cpu.noise", "rows": "cpu.rows", "antithetic": "cpu.core",
           "relax": "cpu.relax", "rebar": "cpu.rebar", "price": "cpu.core", "rng": "math.rng", "scalar": "math.scalar"}

_FMT = string.Formatter()


class KernelRef:
    """A kernel the step calls: its module alias and name (`KERNELS.rows.zero1`); alias None: a
    global of the step (a user's estimator's kernel, bound by the lowering)."""

    __slots__ = ("alias", "name")

    def __init__(self, alias: str | None, name: str):
        if alias is not None and alias not in MODULES:
            raise ValueError(f"no kernel module {alias!r}: the step's modules are {sorted(MODULES)}")
        self.alias, self.name = alias, name

    @property
    def cpu(self):
        """The CPU kernel (an @njit function of ppl.kernels); AttributeError when there is none."""
        if self.alias is None:
            raise AttributeError(f"{self.name} is a global of the step, not a kernel of ppl.kernels")
        mod = importlib.import_module(f"ppl.kernels.{MODULES[self.alias]}")
        fn = getattr(mod, self.name, None)
        if fn is None:
            raise AttributeError(f"ppl.kernels.{MODULES[self.alias]} has no kernel {self.name!r} ({self})")
        return fn

    def __str__(self):
        return self.name if self.alias is None else f"{self.alias}.{self.name}"

    def on(self, *args) -> "Template":
        """The call template of this kernel, a record: each argument a field the lowering fills by
        name (`"x0"`, `"out"`), a node attribute written as its literal (`lit("scale")`), a
        one-column buffer passed as its 1D view (`flat("out")`), or a constant (`True`, a number)."""
        return Template.of(self, args)

    def variant(self, suffix: str) -> "KernelRef":
        """The kernel of the same module named with `suffix` (a `_rep` or `_const` variant)."""
        return KernelRef(self.alias, self.name + suffix)

    __repr__ = __str__

    def __eq__(self, other):
        return isinstance(other, KernelRef) and (self.alias, self.name) == (other.alias, other.name)

    def __hash__(self):
        return hash((self.alias, self.name))


class _Module:
    def __init__(self, alias):
        self._alias = alias

    def __getattr__(self, name) -> KernelRef:
        if name.startswith("_"):
            raise AttributeError(name)
        return KernelRef(self._alias, name)


class _Kernels:
    """`ppl.KERNELS.<alias>.<name>`: a kernel of the modules the step binds, by reference
    (`ppl.KERNELS.rows.zero1`: ppl.kernels.cpu.rows.zero1 in a CPU step, its CUDA twin in a CUDA
    step), for an estimator's `ctx.call`. Aliases: core, noise, rows, antithetic, relax, rebar,
    price (kernels), rng, scalar (scalar functions)."""

    def __getattr__(self, alias) -> _Module:
        if alias not in MODULES:
            raise AttributeError(f"no kernel module {alias!r}: the step's modules are {sorted(MODULES)}")
        return _Module(alias)


KERNELS = _Kernels()


def ref(kernel) -> KernelRef:
    """A KernelRef from a reference or a `core` kernel's name."""
    return kernel if isinstance(kernel, KernelRef) else KernelRef("core", kernel)


class Printed:
    """A record of the step's code that prints as its `text`: equal to a record of its type that
    prints the same."""

    text: str

    def __init__(self, text):
        self.text = str(text)

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"{type(self).__name__}({self.text!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.text == self.text

    def __hash__(self):
        return hash(self.text)


class Name(Printed):
    """A name of the step's code (a buffer, a view, an argument of the step): equal to that name's
    text too, so that a table keyed by names finds it."""

    def __eq__(self, other):
        return other == self.text if isinstance(other, str) else isinstance(other, Name) and other.text == self.text

    __hash__ = Printed.__hash__

    def render(self, sub) -> str:
        """The name, or sub(name) where that is not None."""
        return _named(self.text, sub)


def _named(name: str, sub) -> str:
    return sub(name) or name


class Flat(Printed):
    """A one-column buffer passed to a kernel as its 1D view (`x.reshape(x.shape[0])`); the
    row-fused lowering passes the row's one value."""

    def __init__(self, buffer):
        self.buffer = str(buffer)
        self.text = self.render(lambda n: None)

    def render(self, sub) -> str:
        b = _named(self.buffer, sub)
        return f"{b}.reshape({b}.shape[0])"


class Buf(Name):
    """A buffer of the step, a workspace's or a data input's: its name (its text), its rows
    (Layout's: "R" every row, "D" one per data row, "Dn" n per data row, a number, or a loop's
    per-step storage: lowering.layout.PerStep) and its width (None: one value per row, a 1D
    buffer). Made where the lowering allocates or binds it."""

    def __init__(self, name, rows="R", width=None):
        self.text, self.rows, self.width = str(name), rows, width


class View(Name):
    """A view the step's head binds: a parameter's or its gradient's (of theta / grad) or a state
    value's (of state), `expr` the view's expression."""

    def __init__(self, name, expr):
        self.text, self.expr = str(name), expr


class Const(Printed):
    """A constant of the step's code written as its literal (a number, a tuple of numbers, True or
    False, np.nan): the names it holds (`names`: np of np.nan) are read once per literal."""

    @property
    def names(self) -> tuple:
        known = _CONST_NAMES.get(self.text)
        if known is None:
            known = _CONST_NAMES[self.text] = () if _is_number(self.text) else text_names(self.text)
        return known


_CONST_NAMES: dict = {}


class Code(Printed):
    """Code the lowering writes that is no kernel call (a loop step's rows or offset, a test, a
    user's function called on a row), made by `code`: its `parts`, each a literal piece of text
    (`(False, text)`) or a value it was made from (`(True, value)`: a name, a number, a record of
    calls.py, another Code). Its `names` (as Call.names') are the values', placed, so no
    tokenizer reads it; `render` writes it with names replaced."""

    def __init__(self, parts: tuple):
        self.parts = tuple(parts)
        text, names = "", []
        for is_value, x in self.parts:
            if is_value:
                names += [(n, len(text) + a, len(text) + b) for n, a, b in arg_names(x)]
            text += str(x)
        self.text, self.names = text, tuple(names)

    def render(self, sub) -> str:
        """Its text with each name n of its values written as sub(n) where that is not None."""
        return "".join(substituted(x, sub) if is_value else x for is_value, x in self.parts)


def code(fmt: str, **values) -> Code:
    """`fmt` with its fields replaced by `values` (a name, a number, a record of calls.py or
    another Code); the names are the values' (arg_names). Words of `fmt` itself are keywords or
    attributes (`.shape`): a name is given as a value, so it is recorded."""
    parts = []
    for literal, field, _, _ in _FMT.parse(fmt):
        _check_words(literal, fmt)
        if literal:
            parts.append((False, literal))
        if field is not None:
            parts.append((True, values[field]))
    return Code(tuple(parts))


def substituted(value, sub) -> str:
    """The text of a value of the step's code (a record of calls.py, a name, a number) with each
    name n it holds written as sub(n) where that is not None: a record writes its parts (Code,
    Call: `render`), any other value's names are replaced where arg_names places them (a user's
    text: where the tokenizer does)."""
    render = getattr(value, "render", None)
    if render is not None:
        return render(sub)
    text = str(value)
    out, at = [], 0
    for n, a, b in arg_names(value):
        r = sub(n)
        if r is not None:
            out += [text[at:a], r]
            at = b
    out.append(text[at:])
    return "".join(out)


def _check_words(literal: str, fmt: str):
    """Refuse a name written in code()'s format (a keyword, an attribute or a number is no name)."""
    i = 0
    while i < len(literal):
        j = i
        while j < len(literal) and (literal[j].isalnum() or literal[j] == "_"):
            j += 1
        word = literal[i:j]
        if word and not word[0].isdigit() and not keyword.iskeyword(word) and literal[:i].rstrip()[-1:] != ".":
            raise ValueError(f"code({fmt!r}): {word!r} is a name; give it as a field's value")
        i = max(j, i + 1)


def per_row(c: float) -> Code:
    """c / B: a row's share of a mean over the step's batch of B data rows."""
    return code(f"{float(c)!r} / {{B}}", B="B")


def batch_size() -> Code:
    """float(B): the step's batch size as a float."""
    return code("{float}({B})", float="float", B="B")


def prefix(buffer, count: int) -> Code:
    """buffer[:count], the first `count` rows of a buffer (a global node's draws: one data row's)."""
    return code("{b}[:" + str(int(count)) + "]", b=buffer)


class StepArg(Name):
    """An argument of the step itself that a kernel call passes on (seed, t, row0, B, theta, grad,
    state)."""


STEP_ARGS = ("theta", "grad", "state", "B", "seed", "t", "row0")


class Column(Printed):
    """A 1D buffer passed as the (rows, 1) array a two-dimensional kernel takes (the rows of
    `rows_of`, the same count)."""

    def __init__(self, buffer, rows_of=None):
        rows_of = rows_of or buffer
        self.buffer, self.rows_of = str(buffer), str(rows_of)
        self.text = self.render(lambda n: None)

    def render(self, sub) -> str:
        return f"{_named(self.buffer, sub)}.reshape({_named(self.rows_of, sub)}.shape[0], 1)"


class Head(Printed):
    """The first 1 / `parts` of a buffer's rows (a drawn row's first configuration block)."""

    def __init__(self, buffer, parts: int):
        self.buffer, self.parts = str(buffer), int(parts)
        self.text = self.render(lambda n: None)

    def render(self, sub) -> str:
        b = _named(self.buffer, sub)
        return f"{b}[:{b}.shape[0] // {self.parts}]"


def text_names(text: str) -> tuple:
    """(name, start, end) of every identifier of a line's text that is not an attribute or a
    keyword, read by Python's tokenizer: for text no record describes (a user estimator's line
    or expression; a constant's literal, once)."""
    out, prev = [], None
    starts = [0]
    for line in text.split("\n")[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text + "\n").readline):
            if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string) and prev != ".":
                out.append((tok.string, starts[tok.start[0] - 1] + tok.start[1], starts[tok.end[0] - 1] + tok.end[1]))
            if tok.type == tokenize.OP or tok.type == tokenize.NAME:
                prev = tok.string
    except (tokenize.TokenError, IndentationError):   # a fragment (an opened bracket): names so far
        pass
    return tuple(out)


def arg_names(arg) -> tuple:
    """(name, start, end) of the identifiers of one argument's text, from its record: a name, a
    Flat, Column or Head buffer, a constant, code (calls.code), a number or a tuple of them; text
    of another form (a user's estimator's expression) is read by text_names."""
    of = _NAMES_OF.get(type(arg))
    if of is not None:
        return of(arg)
    if isinstance(arg, (int, float, tuple)):   # a NumPy number
        return ()
    text = str(arg)
    if text.isidentifier() and not keyword.iskeyword(text):
        return ((text, 0, len(text)),)
    return text_names(text)


def _flat_names(arg) -> tuple:
    n = len(arg.buffer)
    return ((arg.buffer, 0, n), (arg.buffer, n + 9, 2 * n + 9))


def _column_names(arg) -> tuple:
    at = len(arg.buffer) + 9
    return ((arg.buffer, 0, len(arg.buffer)), (arg.rows_of, at, at + len(arg.rows_of)))


def _head_names(arg) -> tuple:
    at = len(arg.buffer) + 2
    return ((arg.buffer, 0, len(arg.buffer)), (arg.buffer, at, at + len(arg.buffer)))


def _none(arg) -> tuple:
    return ()


_NAMES_OF = {bool: _none, int: _none, float: _none, tuple: _none, Const: lambda a: a.names, Code: lambda a: a.names,
             Flat: _flat_names, Column: _column_names, Head: _head_names}


class Call:
    """One kernel call: `kernel` (a KernelRef) on `args`, and the line it prints (`text`).
    `assign`: (target, op) of a line that assigns the call's returned value (`("loss", "+=")`:
    `loss += <call>`); None: the call is the line."""

    __slots__ = ("kernel", "args", "assign", "text")

    def __init__(self, kernel, args=(), assign: tuple | None = None):
        kernel = ref(kernel)
        args = tuple(args)
        text = f"{kernel}({', '.join(map(str, args))})"
        if assign is not None:
            target, op = assign
            if not target.isidentifier() or op not in ("=", "+="):
                raise ValueError(f"a call's value is assigned to a name by '=' or '+=', not {assign!r}")
            text = f"{target} {op} {text}"
        self.kernel, self.args, self.assign, self.text = kernel, args, assign, text

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"Call({self.text!r})"

    def __eq__(self, other):
        return isinstance(other, Call) and (self.kernel, self.args, self.assign) == (other.kernel, other.args, other.assign)

    def __hash__(self):
        return hash(self.text)

    def render(self, sub) -> str:
        """Its line with each name n of its arguments written as sub(n) where that is not None."""
        text = f"{self.kernel}({', '.join(substituted(a, sub) for a in self.args)})"
        return text if self.assign is None else f"{self.assign[0]} {self.assign[1]} {text}"

    @property
    def names(self) -> tuple:
        """(name, start, end) of every identifier of its line, from the record: the target it
        assigns to, the module alias and each argument's (arg_names)."""
        out, at = [], 0
        if self.assign is not None:
            target, op = self.assign
            out.append((target, 0, len(target)))
            at = len(target) + len(op) + 2
        if self.kernel.alias is not None:
            out.append((self.kernel.alias, at, at + len(self.kernel.alias)))
        else:
            out.append((self.kernel.name, at, at + len(self.kernel.name)))
        at += len(str(self.kernel)) + 1
        for arg in self.args:
            out += [(n, at + a, at + b) for n, a, b in arg_names(arg)]
            at += len(str(arg)) + 2
        return tuple(out)


def call(kernel, *args) -> Call:
    """The call of `kernel` (a KernelRef, or a `core` kernel's name) on args."""
    return Call(kernel, args)


class Lit(Printed):
    """A template argument: the node attribute `name` written as its literal (`{name!r}`)."""


class FlatField(Printed):
    """A template argument: the buffer field `name` passed as its 1D view (a Flat buffer)."""


def lit(name: str) -> Lit:
    return Lit(name)


def flat(name: str) -> FlatField:
    return FlatField(name)


class Template:
    """A call with field arguments (the op table's `fwd` / `bwd`, a law's `enum`, an estimator's
    per-law kernels): the kernel and each argument's template (`str.format` text over the
    fields) with whether it is a Flat buffer's 1D view. Declared as a record (`KernelRef.on`),
    or read once from a call's text `alias.name(arg, ...)` (a user's estimator's tables may give
    text; `{x}.reshape({x}.shape[0])` is a Flat buffer)."""

    def __init__(self, text: str):
        parts = _call_parts(text)
        if parts is None:
            raise ValueError(f"a call template is `alias.kernel(arg, ...)`, got {text!r}")
        alias, name, args = parts
        self._set(KernelRef(alias or "core", name), [_flat_of(a) for a in args])

    @classmethod
    def of(cls, kernel, args) -> "Template":
        """The template of kernel(*args), args as KernelRef.on's."""
        parts = []
        for a in args:
            if isinstance(a, FlatField):
                parts.append((f"{{{a}}}", True))
            elif isinstance(a, Lit):
                parts.append((f"{{{a}!r}}", False))
            elif isinstance(a, str) and a.isidentifier():
                parts.append((f"{{{a}}}", False))
            elif isinstance(a, (bool, int, float)):
                parts.append((repr(a), False))
            else:
                raise ValueError(f"{kernel}: a template argument is a field name, lit(name), flat(name) or a "
                                 f"constant, not {a!r}")
        self = cls.__new__(cls)
        self._set(ref(kernel), parts)
        return self

    def _set(self, kernel, parts: list):
        self.kernel = kernel
        self._parts = tuple(parts)   # each argument's template and whether it is a Flat buffer's view
        self.args = tuple(f"{a}.reshape({a}.shape[0])" if is_flat else a for a, is_flat in parts)
        self.fields = frozenset(f for a in self.args for _, f, _, _ in _FMT.parse(a) if f)
        self.text = f"{kernel}({', '.join(self.args)})"
        self._fill = tuple(_filler(a, is_flat) for a, is_flat in parts)   # how __call__ makes each argument

    def __call__(self, **values) -> Call:
        """The call on `values`: an argument that is one field is the value itself (a buffer's
        record stays one), a literal field its literal (Const), others their text."""
        return Call(self.kernel, [fill(values) for fill in self._fill])

    def __str__(self):
        return self.text


def _filler(a: str, flat: bool):
    """How a template argument is made from the values, decided once per argument."""
    if flat:
        return lambda values: Flat(a.format(**values))
    if a.startswith("{") and a.endswith("}") and a[1:-1].isidentifier():
        return lambda values: values[a[1:-1]]
    if a.startswith("{") and a.endswith("!r}") and a[1:-3].isidentifier():
        return lambda values: Const(repr(values[a[1:-3]]))
    if _is_number(a):   # a constant of the template
        const = Const(a)
        return lambda values: const
    return lambda values: a.format(**values)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return not text.strip().isalpha()   # "nan", "inf": names, not literals


def _flat_of(arg: str) -> tuple:
    """(the buffer's template, True) for an argument written `{x}.reshape({x}.shape[0])` (a
    Flat buffer), else (the argument, False)."""
    head, dot, tail = arg.partition(".reshape(")
    return (head, True) if dot and tail == f"{head}.shape[0])" else (arg, False)


def _call_parts(text: str):
    """(alias or "", name, argument texts) of a call's text `alias.name(arg, ...)` whose own
    parentheses close at its end; None when the text is no such call."""
    head, sep, rest = str(text).strip().partition("(")
    alias, _, name = head.rpartition(".")
    if not sep or not name.isidentifier() or not rest.endswith(")"):
        return None
    depth = 0
    for ch in rest[:-1]:
        depth += (ch in "([{") - (ch in ")]}")
        if depth < 0:
            return None
    return (alias, name, _split(rest[:-1])) if depth == 0 else None


def _split(args: str) -> list:
    """The top-level comma-separated parts of an argument list."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(args):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(args[start:i].strip())
            start = i + 1
    last = args[start:].strip()
    return out + [last] if last else out


_TEMPLATES: dict = {}


def template(text) -> Template:
    """The template of a call's text (read once per text)."""
    if isinstance(text, Template):
        return text
    t = _TEMPLATES.get(text)
    if t is None:
        t = _TEMPLATES[text] = Template(text)
    return t


def parse(line: str) -> Call | None:
    """The record of a line of text that calls a kernel of the step's modules (`alias.name(arg,
    ...)`, the form an estimator's `ctx.emit` may still be given), else None."""
    parts = _call_parts(line)
    if parts is None or parts[0] not in MODULES:
        return None
    alias, name, args = parts
    return Call(KernelRef(alias, name), args)


def kernel_table(table: dict) -> dict:
    """A table of kernels (a law's `kernels`, an estimator's per law) as objects: a kernel's name
    (a kernel of `core`) its KernelRef, a call with `{field}` arguments its Template."""
    out = {}
    for role, k in table.items():
        if isinstance(k, str) and "(" in k:
            k = template(k)
        elif isinstance(k, str):
            k = KernelRef("core", k)
        out[role] = k
    return out


def fields(tpl) -> frozenset:
    """The names a template uses (`{x0}` and `{scale!r}` give x0 and scale)."""
    return template(tpl).fields


def render(tpl, **values) -> Call:
    """The call of a template; a value given as a callable is called only when the template
    uses its name (reading a node's value may emit code, e.g. repeating a data-row value)."""
    t = template(tpl)
    return t(**{k: (v() if callable(v) else v) for k, v in values.items() if k in t.fields})
