"""Kernel calls as records: what the step's IR holds for every call of a kernel.

`KERNELS.<alias>.<name>` is a `KernelRef`: a kernel of one of the modules the step binds
(`MODULES`: the alias the step's code uses -> the CPU module of ppl.kernels; the CUDA header binds
the same aliases to the CUDA twins, ppl/targets.py). `Call(kernel, args)` is one call: the
reference and its arguments, each a typed record of ppl/records.py (a workspace buffer `Buf`, a
view `View`, an argument of the step `StepArg`, a constant `Const`, `Flat` / `Column` / `Head`
views of a buffer, `Code`), the marker of a skipped gradient (estimators.protocol.NoGrad), or the
text of an expression a user's estimator passes. The step's builder (lowering/ir.StepBuilder.typed)
resolves an argument given by name to its record. A `Call` prints its line and writes itself with
names replaced (`render`); every pass that asks which kernel a line calls, what it passes or which
names it holds (`Call.names`) reads the record (lowering/ir.py, the row-fused lowering, the CUDA
target check), never the text. The records are re-exported here.

Templates (the op table's `fwd` / `bwd`, a law's `enum`, REBAR's and RELAX's per-law kernels) are
call records with field arguments, `KERNELS.rebar.cv_flags.on("stride", ..., "flag")` (Template);
`render(template, **values)` gives the `Call`. A user's estimator may still give a template as
text, `alias.kernel({field}, ...)`, which `template(text)` reads once.
"""
from __future__ import annotations

import importlib
import string

from .records import (STEP_ARGS, Buf, Code, Column, Const, Flat, Head, Name, Printed, Row, StepArg, View,  # noqa: F401
                      _is_number, arg_names, batch_size, code, per_row, prefix, substituted, text_names)

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


class Call:
    """One kernel call: `kernel` (a KernelRef) on `args`, and the line it prints (`text`).
    `assign`: (target, op) of a line that assigns the call's returned value (`("loss", "+=")`:
    `loss += <call>`); None: the call is the line."""

    __slots__ = ("kernel", "args", "assign", "text")

    def __init__(self, kernel, args=(), assign: tuple | None = None):
        kernel = ref(kernel)
        args = tuple(args)
        if assign is not None and (not assign[0].isidentifier() or assign[1] not in ("=", "+=")):
            raise ValueError(f"a call's value is assigned to a name by '=' or '+=', not {assign!r}")
        self.kernel, self.args, self.assign = kernel, args, assign
        self.text = self._line(", ".join(map(str, args)))

    def _line(self, args: str) -> str:
        """Its line over the arguments' text `args`: the call, or `target op call`."""
        text = f"{self.kernel}({args})"
        return text if self.assign is None else f"{self.assign[0]} {self.assign[1]} {text}"

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"Call({self.text!r})"

    def __eq__(self, other):
        return isinstance(other, Call) and (self.kernel, self.args, self.assign) == (other.kernel, other.args,
                                                                                     other.assign)

    def __hash__(self):
        return hash(self.text)

    def render(self, sub) -> str:
        """Its line with each name n of its arguments written as sub(n) where that is not None."""
        return self._line(", ".join(substituted(a, sub) for a in self.args))

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
