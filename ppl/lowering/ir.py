"""The step's IR: typed statements and bindings, and the passes over them.

Every statement the lowering emits becomes a `Stmt`: its record, the text the record prints,
and what the passes need to know of it without reading text again: the node that emitted it,
the kernel it calls (module alias, function) when it is a kernel call, and every identifier it
names with its position, from its record: a kernel call's (calls.Call.names), a check's raise
(`Raise`), a line of `calls.code` (a test, a user's function on a row, a loop step's rows), a
row statement's (statements.RowLine); only a user's own text (a user estimator's `ctx.emit`) is
read by the tokenizer (`Stmt.recorded` False). Control flow is records too: `If` (a test, its
branches; a check is one whose branch raises) and `For` (a user's function over rows) hold
their statements, and `Loop` a loop block's; the printers alone turn them into lines. Every name
the step's head binds is a `Bind`: a workspace or input tuple item (source "ws2" / "ws1" /
"inputs", its index) or a view (source "view", its expression).

Passes over this data (no regular expression reads the generated text; an `If` keeps a check and
its raise together, a `For` a user function's loop over rows):
- `unread_repeats`: the copies of a data-row value to its drawn rows that no statement reads;
- `inline`: a statement with some names replaced by expressions (the CPU step writes views
  where they are used; every step writes the empty buffer a skipped gradient's marker stands
  for, `SPELLING`), spliced at the recorded positions;
and the CUDA target check (targets.py) reads each statement's owner and kernel.

The walk writes the step through a `StepBuilder` (the sections, the head, the layout and where the
next statement goes) and `finish` returns it as a frozen `Step`, which the printers read; the
row-fused step's kernel calls are `RowCall` records, its parts around the row loop `RowCode`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from ..calls import (STEP_ARGS, Buf, Call, Code, Const, KernelRef, Name, Row, StepArg, View, arg_names, code, substituted,
                     text_names)
from ..estimators.protocol import NO_GRAD, NO_GRAD_1D

_REPEATS = {("rows", "repeat_rows"), ("rows", "gather_rows")}
# a skipped gradient's marker (estimators.protocol.NoGrad), held by a statement as its name: the printer
# writes the step's empty buffer it stands for in its place
SPELLING = {m.name: m.buffer for m in (NO_GRAD, NO_GRAD_1D)}


class Stmt:
    """One emitted statement: its record (`record`: a kernel call's calls.Call, a line of
    calls.code, a check's Raise, a Define, a row statement's line; or a user's text), the text it
    prints (`text`), the node that emitted it (None: the step's own), its call record when it is
    a kernel call (`call`; None otherwise), the kernel it calls ((alias, function) or None) and its
    identifiers ((name, start, end) in the text)."""

    __slots__ = ("record", "text", "owner", "recorded", "store", "defines", "call", "kernel", "names")

    def __init__(self, line, owner=None):
        if isinstance(line, Stmt):   # the same statement, owned anew
            line = line.record
        self.record, self.text, self.owner = line, str(line), owner
        self.store = isinstance(line, Store)   # a row-fused write of a row's value to the workspace
        self.defines = line.name if isinstance(line, Define) else None   # the name a Define gives its first value
        known = getattr(line, "names", None)   # a record's (a Call's computed once here)
        self.names = known if known is not None else text_names(self.text)
        self.recorded = known is not None   # else its names are its text's, read by the tokenizer: a user's line
        self.call = line if isinstance(line, Call) else None
        self.kernel = (line.kernel.alias, line.kernel.name) if self.call is not None else None

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"Stmt({self.text!r})"

    def written(self) -> str | None:
        """The buffer a kernel call writes when its last argument is a bare name (the output)."""
        if self.call is None or not self.call.args:
            return None
        last = self.call.args[-1]
        if isinstance(last, Name):   # a buffer's (or another name's) record
            return str(last)
        return last if isinstance(last, str) and last.isidentifier() else None


class RowCall:
    """A kernel call of the row-fused step: the kernel (its CPU function, whose declared body the
    printer inlines over the row's locals: kernels/rowcode.py), its arguments (a local, an entry
    of theta, grad or state, a number, or None for a skipped gradient; in a call made in the code
    of configuration `row`, also a tuple of such, one per configuration of the drawn row) and the
    tag of the locals its body binds (two calls of one row never share a local); `part`: of a
    kernel that folds over the rows, "before", "each" or "after" (the three share their tag)."""

    store = False

    def __init__(self, kernel, args: list, tag: int, row=None, part=None):
        self.kernel, self.args, self.tag, self.row, self.part = kernel, tuple(args), tag, row, part
        self.rewritten = None   # (lines, modules their globals need, texts read): printer.row_lines_of, made once
        # the names its arguments hold (a pass counting names sees them; no place in a line): its
        # body's lines hold no other name of the step (its own locals are renamed by its tag)
        texts = [t for a in self.args for t in (a if isinstance(a, tuple) else (a,)) if t is not None]
        self.names = tuple((n, -1, -1) for a in texts for n, _, _ in arg_names(a))


class Store:
    """A line of row-fused code that writes a row's value to the workspace: only the forward-only
    step keeps it (the gradient step needs none); `Stmt.store` records it. `names`: those of its
    statement record (statements.RowLine)."""

    __slots__ = ("text", "names")

    def __init__(self, text, names=None):
        self.text, self.names = str(text), names

    def __str__(self):
        return self.text


class Raise:
    """The raise a check ends with, `raise ModelError_("<message>")`: the message names the node,
    the problem and the fix; `names`: the error's only."""

    __slots__ = ("message", "names")

    def __init__(self, message: str):
        if '"' in message or "\\" in message:
            raise ValueError(f"a check's message holds no double quote or backslash: {message!r}")
        self.message = message
        self.names = (("ModelError_", 6, 17),)

    def __str__(self):
        return f'raise ModelError_("{self.message}")'


class Define:
    """A statement that gives a name of the step its first value, `name = expr` (the loss's 0.0):
    the step's reversed form (printer.print_reversed) keeps it before every statement."""

    __slots__ = ("name", "expr", "names")

    def __init__(self, name: str, expr):
        self.name, self.expr = name, expr
        at = len(name) + 3
        self.names = ((name, 0, len(name)), *((n, at + a, at + b) for n, a, b in arg_names(expr)))

    def __str__(self):
        return f"{self.name} = {self.expr}"


@dataclass(frozen=True, eq=False)
class If:
    """`if <test>:` (`if not <test>:` when `negate`), the statements of `then`, and `else:` those
    of `orelse` (None: no else; an empty branch prints `pass`). `test`: a Stmt of a condition (a
    kernel call's record, calls.code, a row statement's line). A check is an If: not its test,
    its raise (`check`)."""

    test: Stmt
    then: tuple
    orelse: tuple | None = None
    negate: bool = False

    def raises(self) -> bool:
        """Whether it is a check: a negated test whose branch is a raise."""
        return self.negate and self.orelse is None and len(self.then) == 1 and isinstance(self.then[0].record, Raise)


@dataclass(frozen=True, eq=False)
class For:
    """`for <var> in range(<count>):` and the statements of `body` (a user's function called on
    each row): `count` a Stmt of the rows' count (calls.code)."""

    var: str
    count: Stmt
    body: tuple


def check(test, message: str, owner=None) -> If:
    """The check `if not <test>: raise ModelError_("<message>")` (a kernel call or code)."""
    return If(Stmt(test, owner), (Stmt(Raise(message), owner),), negate=True)


def inner(st) -> tuple:
    """The statements directly inside an If or a For, the test and the count included, in order."""
    if isinstance(st, If):
        return (st.test, *st.then, *(st.orelse or ()))
    if isinstance(st, For):
        return (st.count, *st.body)
    return ()


class Bind:
    """A name the step's head binds: `name = ws2[i]` (source ws2 / ws1 / inputs, `index`) or a
    view `name = expr` (source "view")."""

    __slots__ = ("name", "source", "index", "expr")

    def __init__(self, name: str, source: str, index: int | None = None, expr: str | None = None):
        expr = f"{source}[{index}]" if source != "view" else expr
        self.name, self.source, self.index, self.expr = name, source, index, expr

    def __str__(self):
        return f"{self.name} = {self.expr}"


def names(text) -> tuple:
    """(name, start, end) of every identifier of a line that is not an attribute or a keyword:
    a kernel call's from its record (calls.Call.names), other text's read by the tokenizer."""
    known = getattr(text, "names", None)   # a Call's, a RowLine's (statements.py), a Stmt's
    return known if known is not None else text_names(str(text))


LOOP_VAR = "it_"   # a loop block's step index in the printed step
STEP_INDEX = code("{it}", it=LOOP_VAR)   # it as code (calls.code: its name recorded)


class PerStep(Code):
    """An offset that moves on by `size` each step (`per_step`), its parts kept: `off` (None, a
    number or code) and `size`."""

    def at(self, t: int) -> int:
        """Its value at step t, where `off` is a number (or None)."""
        return (self.off or 0) + t * self.size

    def __add__(self, k):
        """The offset k further on at every step (k a number: a member's rows after another's)."""
        if not isinstance(k, int) or isinstance(k, bool):
            return NotImplemented
        if k == 0:
            return self
        off = (self.off or 0) + k if isinstance(self.off, (int, type(None))) else code("{o} + {k}", o=self.off, k=k)
        return per_step(self.size, off)


def per_step(size: int, off=None) -> Code:
    """off + it_ * size (it_ * size without `off`): an offset that moves on by `size` each step."""
    c = code(("{off} + " if off is not None else "") + "{it} * {size}", off=off, it=LOOP_VAR, size=size)
    out = PerStep(c.parts)
    out.off, out.size = off, size
    return out


class Loop:
    """A loop block of the step (what `ppl.scan` lowers to: ppl/lowering/loops.py): `pre`, run
    once, then `body` for every step `it_` of `range(length)` (reverse: from the last step down).
    At the top of each step, every per-step buffer the block names (`binds`: its name -> the name
    of its storage, `length` times its rows) is bound to the step's rows of its storage; those no
    other step reads (`one_step`) to the first step's rows but in a forward-only call (mode 0).

    A checkpointed loop (`ckpt`, a Checkpoint: every K steps) keeps K steps (`slabs`: the
    storages of K steps, step it_ in slot it_ % K); the forward block runs `once` after each
    step's body (what must not run again: the costs summed over the steps, the carry saved at
    the end of each segment), and its reverse block, segment by segment from the last, runs the
    forward block's body again over the segment (from the carry saved before it) and then the
    segment's steps backward."""

    def __init__(self, length: int, reverse: bool, binds: dict, slabs=None, ckpt=None, one_step=None):
        self.length, self.reverse, self.binds = length, reverse, binds
        self.slabs = slabs if slabs is not None else {}
        self.ckpt = ckpt
        self.one_step = one_step if one_step is not None else set()
        self.pre: list = []
        self.body: list = []
        self.once: list = []

    def mapped(self, fn) -> "Loop":
        """A new block of the same loop whose `pre`, `body` and `once` are fn of this one's (a pass's
        rewrite of the statements inside it; this block is not changed)."""
        loop = Loop(self.length, self.reverse, self.binds, self.slabs, self.ckpt, self.one_step)
        loop.pre, loop.body, loop.once = fn(self.pre), fn(self.body), fn(self.once)
        return loop

    def bindings(self) -> list:
        """[(name, its rows)] of the per-step buffers the block names, bound at the top of each step
        (the printer writes them under the loop's line)."""
        used = {name for st in flatten(self.body + self.once) for name, _, _ in _stmt_names(st)}
        out = []
        for name, full in self.binds.items():
            if name in used:
                k = self.slabs.get(full)
                out.append((name, slot_rows(full, k, STEP_INDEX) if k is not None
                            else step_rows(full, self.length, at=FIRST_SLOT if name in self.one_step else None)))
        return out


class Checkpoint:
    """A checkpointed loop's segments: K steps each; `saved`: (the checkpoint buffer, the storage
    of the carry node it restores: slot K - 1 before a segment is run again)."""

    def __init__(self, K: int, length: int):
        self.K, self.length = K, length
        self.segments = -(-length // K)
        self.saved: list = []


# the step a buffer of Loop.one_step is bound to: it_ in a forward-only call (mode 0), else the first
FIRST_SLOT = code("({it} if {mode} == 0 else 0)", it=LOOP_VAR, mode="mode")


def step_rows(full: str, length: int, shift: int = 0, at=None) -> Code:
    """The rows of step it_ + shift of a per-step buffer's storage `full` (length steps), or of
    step `at` (code)."""
    n = code("({full}.shape[0] // {length})", full=full, length=length)
    if at is None:
        at = STEP_INDEX if shift == 0 else code(
            "({it} " + ("+" if shift > 0 else "-") + " {k})", it=LOOP_VAR, k=abs(shift))
    return code("{full}[{at} * {n}:({at} + 1) * {n}]", full=full, at=at, n=n)


def slot_rows(full: str, K: int, at) -> Code:
    """The rows of slot `at` % K of a storage of K steps (a checkpointed loop's)."""
    n = code("({full}.shape[0] // {K})", full=full, K=K)
    s = code("(({at}) % {K})", at=at, K=K)
    return code("{full}[{s} * {n}:({s} + 1) * {n}]", full=full, s=s, n=n)


def last_rows(full: str, length: int) -> Code:
    """The rows of the last step of a per-step buffer's storage."""
    return code("{full}[({length} - 1) * ({full}.shape[0] // {length}):]", full=full, length=length)


def _stmt_names(st):
    return st.names if isinstance(st, (Stmt, RowCall)) else names(st)


def flatten(stmts):
    """Every statement, a loop block's `pre` and `body` and a block's lines included, in order."""
    for st in stmts:
        if isinstance(st, Loop):
            yield from flatten(st.pre)
            yield from flatten(st.body)
            yield from flatten(st.once)
        elif isinstance(st, (If, For)):
            yield from flatten(inner(st))
        else:
            yield st


def unread_repeats(stmts: list) -> set:
    """The statements (by id) copying a data-row node's values to its drawn rows
    (`rows.repeat_rows` / `rows.gather_rows` into its twin) whose output no other statement names."""
    count = {}
    for s in flatten(stmts):
        for name, _, _ in _stmt_names(s):
            count[name] = count.get(name, 0) + 1
    out = set()
    for s in flatten(stmts):
        if isinstance(s, Stmt) and s.kernel in _REPEATS:
            w = s.written()
            if w is not None and count.get(w, 0) == 1:
                out.add(id(s))
    return out


def without(stmts: list, drop: set) -> list:
    """The statements but those whose id is in `drop`, inside loop blocks too (a new block: the
    step's record is not changed)."""
    out = []
    for st in stmts:
        if isinstance(st, Loop):
            out.append(st.mapped(lambda stmts: without(stmts, drop)))
        elif id(st) not in drop:
            out.append(st)
    return out


def inline(stmt, exprs: dict) -> str:
    """The statement's text with each name of `exprs` written as its expression: a record writes
    its parts (calls.substituted), a user's line is spliced where the tokenizer found its names."""
    return substituted(stmt.record if isinstance(stmt, Stmt) else stmt, exprs.get)


def rewritten(stmts: list, fn) -> list:
    """The statements with each Stmt s replaced by fn(s) where that is not None, inside blocks
    and loop blocks too (new ones: the step's record is not changed)."""
    out = []
    for st in stmts:
        if isinstance(st, Loop):
            out.append(st.mapped(lambda xs: rewritten(xs, fn)))
        elif isinstance(st, If):
            out.append(replace(st, test=fn(st.test) or st.test, then=tuple(rewritten(list(st.then), fn)),
                               orelse=None if st.orelse is None else tuple(rewritten(list(st.orelse), fn))))
        elif isinstance(st, For):
            out.append(replace(st, count=fn(st.count) or st.count, body=tuple(rewritten(list(st.body), fn))))
        else:
            out.append(fn(st) or st if isinstance(st, Stmt) else st)
    return out


def narrow_cells(step, twin_of, one_row_of=lambda alias, name: None):
    """Pass "narrow cells" (the CPU step's): a call of a cells kernel whose loop's argument is a
    buffer of one column calls the kernel's one-column twin instead, a loop over the rows that
    LLVM vectorises; so does a rows kernel whose arrays of read widths all have one column, its
    column loops unrolled (kernels/declare.py, `narrow`). Where the step also calls the kernel
    itself over wider buffers, so that its general body is compiled anyway, a cells kernel that
    reads and writes each array at its own cell only, called on workspace buffers of one column
    and scalars, is called itself on those buffers laid out as one row (`rows.as_row(x)`: the
    same loop over the cells, no twin to compile beside it; kernels/one_row.py). The twin stays
    where nothing calls the general body: it compiles and runs a little faster at one column.
    `twin_of(alias, name)`: (the indices of the arguments the twin takes to have one column, the
    twin's name), or None; `one_row_of(alias, name)`: (the indices of such a kernel's array
    arguments, those of the arguments it does not read), or None."""
    ws2 = {name: (rows, width) for name, rows, width in step.layout.ws2}

    def narrow(st):   # the twin's name where `st` calls a kernel on one column, False on wider arrays, None: no twin
        if st.call is None or st.kernel[0] is None:
            return None
        twin = twin_of(*st.kernel)
        if twin is None or max(twin[0]) >= len(st.call.args):
            return None
        one_column = all(isinstance(a, Buf) and a.width == 1 for a in (st.call.args[i] for i in twin[0]))
        return twin[1] if one_column else False

    wide = {st.kernel for st in flatten([*step.fwd, *step.bwd]) if isinstance(st, Stmt) and narrow(st) is False}

    def one(st):
        twin = narrow(st)
        if not twin:
            return None
        if st.kernel in wide:
            flat = _one_row_call(st.call, one_row_of(*st.kernel), ws2)
            if flat is not None:
                return Stmt(flat, st.owner)
        c = st.call
        return Stmt(Call(KernelRef(c.kernel.alias, twin), c.args, c.assign), st.owner)
    return replace(step, fwd=tuple(rewritten(list(step.fwd), one)), bwd=tuple(rewritten(list(step.bwd), one)))


_SCALAR_ARGS = frozenset({"B", "seed", "t", "row0"})


def _one_row_call(c, found, ws2):
    """The call `c` of a kernel with its array arguments passed as one row (`found`: their
    indices, those of the arguments the kernel does not read), or None where one of them is not a
    workspace buffer of one column (`ws2`: name -> (rows, width), the layout's; not a loop's
    per-step storage; a skipped gradient's marker is passed as it is: the kernel tests its rows)
    or another argument read is not a scalar."""
    if found is None or max(found[0]) >= len(c.args):
        return None
    arrays, unread = found
    args = list(c.args)
    for i, a in enumerate(args):
        if i in unread:
            continue
        if i in arrays:
            if a is NO_GRAD:
                continue
            rows, width = ws2.get(a.text, (0, None)) if isinstance(a, Name) else (0, None)
            if width != 1 or rows == 0 or isinstance(rows, tuple):   # tuple: a loop's per-step storage
                return None
            args[i] = Row(a)
        elif not (isinstance(a, (bool, int, float, Const)) or isinstance(a, StepArg) and a.text in _SCALAR_ARGS):
            return None
    if all(args[i] is NO_GRAD for i in arrays):
        return None
    return Call(c.kernel, tuple(args), c.assign)


@dataclass(frozen=True)
class RowCode:
    """What the row-fused step adds around its row loop (printer.print_rows): the statements
    before it (`pre`: state reads) and after it (`post`: state updates, gradient step only;
    lines, or a fold's parts, `RowCall`), the inner
    functions' names of the data inputs and of the one-value scratch rows (`scratch`: name -> ws1
    index), the modules of ppl.kernels its row code calls beyond the step's (`imports`: alias ->
    module), its float type and the samples per data row."""

    pre: tuple
    post: tuple
    inputs: tuple
    scratch: MappingProxyType
    imports: MappingProxyType
    fdtype: str
    samples: int


@dataclass(frozen=True)
class Step:
    """The lowered step, what the walk returns (Lowering.finish) and the printers read: the
    layout a Program allocates from, the head's bindings (Bind), the row weights' fill run before
    every statement (`weights`), the forward and backward sections (Stmt, If, For, Loop), every
    emitted statement with its owner (`emitted`: the target check), the user functions the step
    calls (`globals`: such a step is not cached on disk) and a user estimator's kernels on CUDA
    (`user_kernels`: global name -> (kernel, node)); `rows`: the row-fused step's own parts
    (None for the array step)."""

    layout: object
    head: tuple
    weights: tuple
    fwd: tuple
    bwd: tuple
    emitted: tuple
    globals: MappingProxyType
    user_kernels: MappingProxyType
    rows: RowCode | None = None


class StepBuilder:
    """The step while the walk builds it (`Lowering.builder`): the layout, the head's bindings,
    the forward and backward sections, every emitted statement with its owner, the user functions
    and a user estimator's kernels; and where the next statement goes (`section`: a section, or
    an open loop block's body or pre; `owner`: the node whose code is emitted; `here`: the rows
    it is emitted for; `cfg`: the configuration). The lowering's parts write the step, and move
    its insertion point, only through it; `finish` returns it as the frozen Step."""

    def __init__(self, layout):
        self.L = layout
        self.head: list = []        # Bind: the names of params, state and workspaces
        self.fwd: list = []         # Stmt, If, For, Loop, in order
        self.bwd: list = []
        self.emitted: list = []     # every emitted statement (its owner node: the target check)
        self.globals: dict = {}     # global name -> a user's function the step calls
        self.user_kernels: dict = {}   # global name -> (estimators.context.Kernel, node): a user estimator's kernels
        self.section: list = self.fwd
        self.owner = None
        # name -> the typed record a call's argument of that name stands for: the step's own
        # arguments, the markers of skipped gradients, every buffer and view made (declare)
        self.symbols: dict = {name: StepArg(name) for name in STEP_ARGS}
        self.symbols.update({m.name: m for m in (NO_GRAD, NO_GRAD_1D)})
        self.symbols.update({c: Const(c) for c in ("True", "False")})
        self.here = None   # the layout of the node being lowered (its rows: lowering/views.py)
        self.cfg = 0       # the configuration whose code is emitted (the row-fused lowering unrolls them)

    def declare(self, symbol):
        """Record a buffer or view the step holds (calls.Buf, calls.View) under its name."""
        self.symbols[str(symbol)] = symbol
        return symbol

    def typed(self, line):
        """A kernel call with each argument given as a name resolved to the record that name
        stands for (a Buf, a View, a step argument, a marker); other lines as they are."""
        if not isinstance(line, Call) or not any(type(a) is str and a in self.symbols for a in line.args):
            return line
        args = tuple(self.symbols.get(a, a) if type(a) is str else a for a in line.args)
        return Call(line.kernel, args, line.assign)

    def statement(self, line: str) -> Stmt:
        """The typed statement of an emitted line (its owner, kernel call and names)."""
        return Stmt(self.typed(line), self.owner)

    def emit(self, line: str):
        st = self.statement(line)
        self.section.append(st)
        self.emitted.append(st)

    def emit_if(self, test, then=(), orelse=None, negate: bool = False):
        """`if <test>:` (`if not` when `negate`) over the lines of `then`, `else:` over those of
        `orelse` (None: no else), as one statement (If)."""
        self._emit_node(If(self.statement(test), tuple(self.statement(x) for x in then),
                           None if orelse is None else tuple(self.statement(x) for x in orelse), negate))

    def emit_check(self, test, message: str):
        """The check `if not <test>: raise ModelError_("<message>")` (If)."""
        self._emit_node(check(self.typed(test), message, self.owner))

    def emit_for(self, var: str, count, body):
        """`for <var> in range(<count>):` over the lines of `body`, as one statement (For)."""
        self._emit_node(For(var, self.statement(count), tuple(self.statement(x) for x in body)))

    def _emit_node(self, node):
        self.section.append(node)
        self.emitted.extend(flatten([node]))

    def emit_at_start(self, line: str):
        """A line run once at the top of the step, before the forward pass."""
        st = self.statement(line)
        self.fwd.insert(0, st)
        self.emitted.append(st)

    def append(self, record):
        """A statement that is a record, not a line (a RowCall), where the next statement goes."""
        self.section.append(record)

    def bind(self, name: str, source: str, index: int | None = None, expr: str | None = None, width=None):
        """A name the step's head binds (Bind), declared as the buffer or view it is (an input's:
        its data rows, `width` columns)."""
        self.head.append(Bind(name, source, index, expr))
        if source == "ws2":
            _, rows, width = self.L.ws2[index]
            self.declare(Buf(name, rows, width))
        elif source == "ws1":
            self.declare(Buf(name, self.L.ws1[index][1]))
        elif source == "inputs":
            self.declare(Buf(name, "D", width))
        else:
            self.declare(View(name, expr))

    def finish(self, weights: list, rows: RowCode | None) -> Step:
        return Step(self.L, tuple(self.head), tuple(weights), tuple(self.fwd), tuple(self.bwd), tuple(self.emitted),
                    MappingProxyType(dict(self.globals)), MappingProxyType(dict(self.user_kernels)), rows)
