"""The CUDA step's launches joined: where one launch can do the work of several consecutive
kernel calls, the printed CUDA step makes one call (lowering/printer.py, `print_arrays` with its
sink). The CPU step is not touched: a call there costs no launch.

* `zeroed`: a run of zeroed buffers (rows.zero1 / zero2) is one `rows.zero_all`, and a run of loss
  terms of the same weights and totals (rows.weighted_total_into) one `rows.weighted_totals_into`;
* `spread_noise`: a noise fill of a drawn row's rows and its spread over their configurations
  (rows.expand_rows) is one fill of every row at its drawn row's address (noise.fill_*_spread);
* `bias_apart`: an affine layer's forward call is its bias rows written (core.broadcast_rows_fwd,
  a declared kernel, which the CUDA product launched anyway before its product) and the product
  added to them (core.affine_acc), so the bias write can join the kernels before it;
* `sums_last`: an affine layer's backward call is its products and its bias's gradient a column
  sum of its own (core.broadcast_rows_bwd, as a parameter broadcast over rows has); the column
  sums sink to the end of the section, past statements that reach neither their cotangent nor
  their gradient (nor the whole gradient), and are one `rows.column_sums_all` launch;
* `stepped`: a loop block (a `ppl.scan`'s steps) whose every statement is a declared kernel at
  its rows (a carry's `if` / `else` included) is one `rows.stepped` launch: each row's lanes run
  all its steps (kernels/cuda/fused.py), instead of a launch per kernel and step; a check in it
  (its `_into` count) counts the whole per-step buffer once, after it;
* `fused`: a run of declared kernels over the same rows is one `rows.fused` (kernels/cuda/fused.py;
  which may join: kernels/fusion.py). A member may float up to the run past statements that name
  none of its arrays (a product of other arrays, a noise fill, a line of the sink's), not past a
  check's block or a loop; a member no open run takes opens one, and the earlier runs stay open
  (a member joins the newest that takes it); a member over other rows (or none known) joins as
  side work, its own loop, where the arrays it shares with the run are only read, or added to.
  A check's count (its `_into`, a declared row kernel adding to a word of the sink) joins as any
  member does.

`joined(stmts, per)` runs them in the order `spread_noise`, `bias_apart`, `stepped`, `fused`,
`zeroed`, `sums_last` (a zeroed buffer joins the kernels over its rows first, the gradient's as
their side work); a loop block left as a loop has its `pre` and `body` joined each on their own.
"""
from __future__ import annotations

from ..calls import Call, Code, Column, Const, Flat, Head, KernelRef, StepArg, View, arg_names, code
from ..estimators.protocol import NO_GRAD, NO_GRAD_1D, NoGrad
from ..kernels import fusion, registry
from ..targets import CUDA_FAMILIES
from . import ir

_NO_MEMORY = frozenset(m.name for m in (NO_GRAD, NO_GRAD_1D))   # a skipped gradient's empty buffer: nothing
VIEWS = "theta, grad, state"   # the key of every view of theta, grad and state (one array, conservatively)
MAX_ARGS = 40   # arguments of a joined kernel at most (a launch's parameters: 4 KB, 72 bytes a 2D array)
MAX_STEP_ARGS = 40   # of a loop block's kernel (its storages are its arrays: no view of each step)
_WHOLE = ("theta", "grad", "state")


def joined(stmts: list, per: int) -> list:
    """The statements with their launches joined (`per`: the step's rows per data row)."""
    return sums_last(zeroed(fused(stepped(bias_apart(spread_noise(stmts)), per), per)))


# ----------------------------------------------------------------- zeroed buffers, loss terms
def _join_key(st):
    """What a statement joins with in one launch (None: nothing): zeroed buffers with each other;
    a loss term with those of the same weights and totals."""
    if not isinstance(st, ir.Stmt) or st.call is None or st.call.indent:
        return None
    if st.kernel in (("rows", "zero1"), ("rows", "zero2")):
        return ("zero",)
    if st.kernel == ("rows", "weighted_total_into"):
        rw, _, acc, *_ = st.call.args
        return ("totals", str(rw), str(acc))
    return None


def _join(key: tuple, run: list) -> ir.Stmt:
    """One call for a run of statements of the join key `key` (_join_key)."""
    if key == ("zero",):
        call = Call(KernelRef("rows", "zero_all"), [a for z in run for a in z.call.args])
    else:
        rw, _, acc, sink, _ = run[0].call.args
        call = Call(KernelRef("rows", "weighted_totals_into"),
                    [rw, acc, sink, *(a for t in run for a in (t.call.args[1], t.call.args[4]))])
    return ir.Stmt(call, run[0].owner)


def zeroed(stmts: list) -> list:
    """Each run of two or more consecutive statements of one join key (_join_key) as one call."""
    out, run, run_key = [], [], None
    for st in [*stmts, None]:
        key = _join_key(st)
        if key is not None and key == run_key:
            run.append(st)
            continue
        out += [_join(run_key, run)] if len(run) > 1 else run
        run, run_key = ([st], key) if key is not None else ([], None)
        if key is None and st is not None:
            out.append(st.mapped(zeroed) if isinstance(st, ir.Loop) else st)
    return out


# ----------------------------------------------------------------- the bias apart from its product
def bias_apart(stmts: list) -> list:
    """Each affine layer's forward call as its bias rows written and the product added to them."""
    out = []
    for st in stmts:
        if isinstance(st, ir.Loop):
            out.append(st.mapped(bias_apart))
        elif isinstance(st, ir.Stmt) and st.kernel == ("core", "affine_fwd") and not (st.call.indent or st.call.wrap):
            x, W, b, res = st.call.args
            out += [ir.Stmt(Call(KernelRef("core", "broadcast_rows_fwd"), (b, res)), st.owner),
                    ir.Stmt(Call(KernelRef("core", "affine_acc"), (x, W, res)), st.owner)]
        else:
            out.append(st)
    return out


# ----------------------------------------------------------------- column sums at the end
_SUM = ("core", "broadcast_rows_bwd")   # out += the column sums of a 2D cotangent


def sums_last(stmts: list) -> list:
    """The section's column sums into parameters' gradients (an affine layer's bias's, split from
    its backward call; a broadcast parameter's) sunk to the end of the section and made one
    rows.column_sums_all launch. A sum sinks past a statement that reaches neither its cotangent
    buffer, nor its gradient's view, nor the whole gradient (each parameter's gradient is a view
    of its own slot); a statement that does (or a check's block, a loop) has the sums it reaches
    before it, joined. A loop's sums stay in it."""
    out, pending = [], []
    for st in [*_bias_sums_apart(stmts), None]:
        if st is not None and _is_sum(st):
            pending.append(st)
            continue
        reach = _reach(st)
        stopped = [reach is None or bool(_sum_reach(s) & reach) for s in pending]
        out += _sums_call([s for s, stop in zip(pending, stopped) if stop])
        pending = [s for s, stop in zip(pending, stopped) if not stop]
        if st is not None:
            out.append(st)
    return out


def _bias_sums_apart(stmts: list) -> list:
    out = []
    for st in stmts:
        if isinstance(st, ir.Stmt) and st.kernel == ("core", "affine_bwd") and not (st.call.indent or st.call.wrap):
            x, W, gout, gx, gW, gb = st.call.args
            if isinstance(gb, View) and not isinstance(gout, Code):
                if not (isinstance(gx, NoGrad) and isinstance(gW, NoGrad)):
                    products = Call(KernelRef("core", "affine_bwd"), (x, W, gout, gx, gW, NO_GRAD_1D))
                    out.append(ir.Stmt(products, st.owner))
                out.append(ir.Stmt(Call(KernelRef(*_SUM), (gout, gb)), st.owner))
                continue
        out.append(st)
    return out


def _is_sum(st) -> bool:
    return (isinstance(st, ir.Stmt) and st.kernel == _SUM and not (st.call.indent or st.call.wrap)
            and isinstance(st.call.args[1], View) and not isinstance(st.call.args[0], Code))


def _sum_reach(st) -> set:
    g, out = st.call.args
    return {*_memory(g)[0], str(out), "grad"}


def _reach(st) -> set | None:
    """The names through which a statement reaches memory, a parameter's view by its own name
    (None: the end of the section, a check's block, a loop, any other record: anything)."""
    if not isinstance(st, ir.Stmt):
        return None
    if st.call is None:
        return {n for n, _, _ in st.names}
    out = set()
    for a in st.call.args:
        if isinstance(a, View):
            out.add(str(a))
        elif isinstance(a, Code):
            out.update(n for n, _, _ in a.names)
        else:
            out.update(_memory(a)[0])
    return out - {VIEWS} | ({str(a) for a in st.call.args if isinstance(a, StepArg) and str(a) in _WHOLE})


def _sums_call(run: list) -> list:
    """One rows.column_sums_all call per MAX_ARGS / 2 sums of the run (a run of one: its call)."""
    per = MAX_ARGS // 2
    out = []
    for k in range(0, len(run), per):
        part = run[k:k + per]
        out.append(part[0] if len(part) == 1 else
                   ir.Stmt(Call(KernelRef("rows", "column_sums_all"), [a for s in part for a in s.call.args]),
                           part[0].owner))
    return out


# ----------------------------------------------------------------- noise drawn on every row at once
_SPREAD = ("uniform", "normal", "logistic", "gumbel")


def spread_noise(stmts: list) -> list:
    """Each noise fill of a buffer's first R / S rows followed by rows.expand_rows of the buffer
    over S (a drawn row's noise for its S configurations: lowering/context.py's `noise`) as one
    noise.fill_*_spread of the whole buffer, each row drawn at its drawn row's address: the same
    values, one launch over every row (which may join others) instead of a fill and a spread."""
    out, i = [], 0
    while i < len(stmts):
        st, nxt = stmts[i], stmts[i + 1] if i + 1 < len(stmts) else None
        if isinstance(st, ir.Loop):
            out.append(st.mapped(spread_noise))
        elif _spread_pair(st, nxt):
            buf, parts = nxt.call.args
            _, seed, stream, step, row0 = st.call.args
            fill = KernelRef("noise", f"{st.kernel[1]}_spread")
            out.append(ir.Stmt(Call(fill, (buf, seed, stream, step, row0, parts)), st.owner))
            i += 1
        else:
            out.append(st)
        i += 1
    return out


def _spread_pair(st, nxt) -> bool:
    """Whether st fills the head of a buffer that nxt spreads over its rows (with the same parts)."""
    if not (isinstance(st, ir.Stmt) and isinstance(nxt, ir.Stmt) and st.call is not None and nxt.call is not None):
        return False
    if st.call.indent or nxt.call.indent or st.kernel[0] != "noise" or nxt.kernel != ("rows", "expand_rows"):
        return False
    kind = st.kernel[1][len("fill_"):] if st.kernel[1].startswith("fill_") else None
    if kind not in _SPREAD or len(st.call.args) != 5 or not isinstance(st.call.args[0], Head):
        return False
    head, (buf, parts) = st.call.args[0], nxt.call.args
    return head.buffer == str(buf) and head.parts == parts


# ----------------------------------------------------------------- declared kernels over the same rows
def _loop_of(st, indented=False):
    """The loop of the CUDA launcher a statement calls (kernels/declare.py's `__loop__`) where a
    joined kernel may take the call (a declared kernel over the rows of an array), else None (a
    call inside a block too, unless `indented`)."""
    if not isinstance(st, ir.Stmt) or st.call is None or (st.call.indent and not indented) or st.call.wrap:
        return None
    alias, name = st.kernel
    k = registry.lookup(CUDA_FAMILIES.get(alias, alias), name)
    loop = getattr(k.impls.get("cuda"), "__loop__", None) if k is not None else None
    if loop is None or loop.shape not in fusion.SHAPES or len(st.call.args) != len(loop.args):
        return None   # (a call leaving an argument to its default keeps its own launch)
    return loop


def _memory(arg) -> tuple:
    """(the arrays an argument may be, keys: two arguments of one key are one array; whether its
    row r is the array's row r). A buffer's views (its one column, its first rows) are the buffer;
    every view of theta, grad and state is one array (conservative: what a member writes of one,
    no other member reaches past its row in another); code (a slice, an expression) may be any
    array it names, at any row; a number is none."""
    if isinstance(arg, NoGrad):   # the empty buffer of a skipped gradient: no memory (every kernel skips it)
        return (), True
    if isinstance(arg, (Flat, Column, Head)):
        return (arg.buffer,), True
    if isinstance(arg, View) or (isinstance(arg, StepArg) and str(arg) in _WHOLE):
        return (VIEWS,), True
    if isinstance(arg, Code):
        return tuple(n for n, _, _ in arg.names), False
    if isinstance(arg, (StepArg, Const, bool, int, float, tuple)):
        return (), True
    return (str(arg),), True


def _names(st) -> set:
    """The names through which a call reaches memory: its arrays', with theta, grad and state for
    a view of them (a line that names none of them reaches none of its arrays)."""
    out = set()
    for a in st.call.args:
        keys, _ = _memory(a)
        for key in keys:
            if key == VIEWS:
                out.update(_WHOLE)
                out.add(str(a))
            else:
                out.add(key)
    return out


_ACCESS: dict = {}   # a declared body -> fusion.access of it


def _touched(st, loop, memory=_memory) -> dict:
    """{array: (written, at the row or fusion.ADDS)} of one call (fusion.access of its body, by its
    arguments; `memory`: what an argument may be, as `_memory`)."""
    acc = _ACCESS.get(loop.body)
    if acc is None:
        acc = _ACCESS[loop.body] = fusion.access(loop.body, loop.lead)
    out = {}
    for param, arg in zip(loop.args, st.call.args):
        if param not in acc:
            continue
        keys, exact = memory(arg)
        w, here = acc[param]
        for key in keys:   # an argument that may be any row of an array reaches it past the row
            out[key] = fusion.merged(out.get(key), w, here if exact else False)
    return out


def _rows(arg, per: int):
    """The rows of a buffer argument per data row (`per`: the step's), or the number of rows with
    the key "all", or None where unknown (not a buffer; a loop's per-step buffer)."""
    rows = getattr(arg, "rows", None)
    if isinstance(rows, int):
        return ("all", rows)
    if rows == "R":
        return ("per data row", per)
    if isinstance(rows, str) and (rows == "D" or (rows[:1] == "D" and rows[1:].isdigit())):
        return ("per data row", int(rows[1:] or 1))
    return None


def _arg_key(a) -> tuple:
    """An argument's identity among a joined kernel's (two of one key are passed once)."""
    return (type(a), str(a))


def _args(st) -> set:
    return {_arg_key(a) for a in st.call.args}


def _apart(touched: dict) -> dict:
    """A member's accesses (`_touched`) as seen from other rows: every one past its row (an add
    stays an add)."""
    return {key: (written, fusion.ADDS if at is fusion.ADDS else False) for key, (written, at) in touched.items()}


class _Run:
    """An open run of declared kernels: its members, what they touch (fusion.Run), their rows, and
    the names of the statements printed after its place, which a later member floats past. A member
    whose rows are not known (a whole array: the gradient's buffer zeroed), or are not the run's
    and no run over its rows takes it, joins as side work where every array it shares with the
    run's members (and a later member with it) is only read by both, or only added to: the
    kernel's threads run its loop apart from the rows' (kernels/cuda/fused.py)."""

    def __init__(self):
        self.members, self.state, self.rows, self.past, self.args = [], fusion.Run(), None, set(), set()
        self.side = fusion.Run()   # what the side members touch, each access taken as past its row

    def takes(self, args: set, touched: dict, over, names: set) -> bool:
        if names & self.past or len(self.args | args) > MAX_ARGS:
            return False
        apart = _apart(touched)
        if over is None:   # side work: its rows are not the run's, so an array it shares only read or added to
            return self.state.fits(apart) and self.side.fits(apart)
        return (self.rows is None or over == self.rows) and self.state.fits(touched) and self.side.fits(apart)

    def add(self, st, loop, args: set, touched: dict, over, names: set, rows=None) -> None:
        self.members.append((st, loop, over is None, over if rows is None else rows))
        self.args |= args
        if over is None:
            self.side.add(_apart(touched))
            return
        self.state.add(touched)
        self.rows = over

    def statements(self) -> list:
        """One `rows.fused` call: its spec names each member (its family and kernel, as the call
        it replaces), the positions of its arguments among the run's, each passed once, and
        "side" for side work (none where the run has no row member: its first runs as one); a
        run of one member, its call."""
        if len(self.members) == 1:
            return [self.members[0][0]]
        uniq, at, spec = [], {}, []
        lead = self.rows is None   # only side work: the first member's loop is the kernel's rows
        for k, (st, _, side, _) in enumerate(self.members):
            pos = []
            for a in st.call.args:
                key = _arg_key(a)
                if key not in at:
                    at[key] = len(uniq)
                    uniq.append(a)
                pos.append(at[key])
            alias, name = st.kernel
            kernel = f"{CUDA_FAMILIES.get(alias, alias)}.{name}"
            spec.append((kernel, tuple(pos), "side") if side and not (lead and k == 0) else (kernel, tuple(pos)))
        call = Call(KernelRef("rows", "fused"), [Const(repr(tuple(spec))), *uniq])
        return [ir.Stmt(call, self.members[0][0].owner)]


def fused(stmts: list, per: int) -> list:
    """Each run of two or more declared kernels that one kernel can do as one `rows.fused` call: a
    member joins an open run while no array one member writes is reached past its row by another
    (kernels/fusion.py), its loop's array has the run's rows (`_rows`; a member whose rows are
    not known, or that no run over its own rows takes, joins as side work, `_Run`; the joined
    kernel checks the counts at launch too),
    the statements it floats past name none of its arrays and the run's arguments stay at most
    MAX_ARGS. A member that no open run takes opens one, and the earlier runs stay open: a later
    member joins the newest run that takes it, floating past the runs after it (whose members'
    names it must not name either), so a check of other rows between two kernels keeps them in
    one kernel."""
    out, runs = [], []   # runs: the open ones, in their order in `out`
    for st in stmts:
        loop = _loop_of(st)
        if loop is not None:
            args, touched, names = _args(st), _touched(st, loop), _names(st)
            over = _rows(st.call.args[loop.args.index(loop.over)], per)
            at = next((k for k in range(len(runs) - 1, -1, -1) if runs[k].takes(args, touched, over, names)), None)
            if at is None and over is not None:   # other rows: side work of the newest run that takes it
                at = next((k for k in range(len(runs) - 1, -1, -1) if runs[k].takes(args, touched, None, names)), None)
                over = None if at is not None else over
            if at is None:
                runs.append(_Run())
                out.append(runs[-1])
                at = len(runs) - 1
            runs[at].add(st, loop, args, touched, over, names, _rows(st.call.args[loop.args.index(loop.over)], per))
            for earlier in runs[:at]:   # they are printed before it: a member joining them floats past it
                earlier.past |= names
            continue
        if isinstance(st, (ir.Block, ir.Loop)):
            runs = []   # nothing floats past a check's raise or a loop
        for run in runs:
            run.past.update(n for n, _, _ in st.names if n not in _NO_MEMORY)
        out.append(st.mapped(lambda body: fused(body, per)) if isinstance(st, ir.Loop) else st)
    return [s for x in _adjacent_joined(out) for s in (x.statements() if isinstance(x, _Run) else [x])]


def _adjacent_joined(out: list) -> list:
    """Two runs with nothing between them as one where its checks take every member in their
    order: over the later run's rows (or else the earlier's), a member over other rows as side work
    (a run of zeroed buffers over other rows before the backward kernel that adds to them)."""
    done = []
    for x in out:
        prev = done[-1] if done else None
        if isinstance(x, _Run) and isinstance(prev, _Run):
            both = next((r for r in (_rejoined(prev.members + x.members, rows) for rows in (x.rows, prev.rows))
                         if r is not None), None)
            if both is not None:
                done[-1] = both
                continue
        done.append(x)
    return done


def _rejoined(members: list, rows):
    """One run over `rows` of these members (those over other rows as side work), or None."""
    if rows is None:
        return None
    run = _Run()
    run.rows = rows
    for st, loop, _, own in members:
        args, touched, names = _args(st), _touched(st, loop), _names(st)
        over = rows if own == rows else None
        if not run.takes(args, touched, over, names):
            return None
        run.add(st, loop, args, touched, over, names, own)
    return run


# ----------------------------------------------------------------- a loop block as one kernel
_KEPT = (ir.LOOP_VAR, "float", "int")   # names a step's argument text keeps in the kernel


class _Steps:
    """One loop block read for `rows.stepped`: its storages by per-step name, the text of each step's
    rows of a storage (a carry's previous step too), and the kernel's parameters as they come."""

    def __init__(self, loop: ir.Loop):
        self.loop, self.params, self.records, self.views = loop, {}, {}, {}
        self.slices = {str(ir.step_rows(full, loop.length, shift)): (full, shift)
                       for full in set(loop.binds.values()) for shift in (-1, 0, 1)}
        self.rows = {}   # storage -> rows of a step (from the per-step buffers bound to it)

    def memory(self, arg) -> tuple:
        """_memory with a per-step buffer and a step's rows of a storage read as the storage,
        at the row (each row's lanes run every step of that row)."""
        name = str(arg)
        if isinstance(arg, _Kept):
            return (name,), True
        if name in self.loop.binds and not isinstance(arg, Code):
            return (self.loop.binds[name],), True
        if isinstance(arg, Code) and name in self.slices:
            return (self.slices[name][0],), True
        keys, exact = _memory(arg)   # (it_ and the builtins a text names are no memory)
        return tuple(self.loop.binds.get(k, k) for k in keys if k not in _KEPT), exact

    def over_rows(self, arg, per):
        if isinstance(arg, Code) and str(arg) in self.slices:
            return self.rows.get(self.slices[str(arg)][0])
        return _rows(arg, per)

    def view(self, full: str, shift: int) -> str:
        """The name of a storage's rows of step it_ + shift in the kernel (s<k>, s<k>m, s<k>p)."""
        k = self.params.setdefault(full, len(self.params))
        name = f"s{k}" + {-1: "m", 0: "", 1: "p"}[shift]
        self.views[name] = (f"a{k}", shift)
        return name

    def scratch(self) -> str:
        """A new scratch storage of the kernel's own (c<i>) and the name of its rows of step it_."""
        i = sum(1 for v in self.views if v.startswith("k"))
        self.views[f"k{i}"] = (f"c{i}", 0)
        return f"k{i}"

    def text(self, s: str, names) -> str:
        """`s` with its names as the kernel's: a per-step buffer its storage's rows of step it_
        (`view`), it_ and builtins kept, any other name a parameter a<k>."""
        out, at = "", 0
        for n, a, b in sorted(names, key=lambda x: x[1]):
            out += s[at:a]
            if n in _KEPT:
                out += n
            elif n in self.loop.binds:
                out += self.view(self.loop.binds[n], 0)
            else:
                out += f"a{self.params.setdefault(n, len(self.params))}"
            at = b
        return out + s[at:]

    def arg(self, a) -> str:
        if isinstance(a, _Kept):
            return str(a)
        if isinstance(a, Code) and str(a) in self.slices:
            return self.view(*self.slices[str(a)])
        for n, _, _ in arg_names(a):
            if n == str(a) and n not in self.loop.binds and type(a) is not str:
                self.records.setdefault(n, a)
        return self.text(str(a), arg_names(a))


def _tested(block: ir.Block, steps: _Steps):
    """[(call, the steps' test)] of a block of `if <test>:` / `else:` lines over declared calls,
    or None for any other block."""
    out, test, last = [], None, None
    for line in block.lines:
        head = str(line).strip()
        if line.call is None and head.startswith("if ") and head.endswith(":") and not str(line)[:1].isspace():
            last = test = steps.text(str(line), line.names).strip()[3:-1]
        elif line.call is None and head == "else:" and last is not None:
            test, last = f"not ({last})", None
        elif line.call is None and head == "pass" and test is not None:
            continue
        elif line.call is not None and test is not None and _loop_of(line, indented=True) is not None:
            out.append((line, test))
        else:
            return None
    return out


def _hoisted(st: ir.Stmt, loop: ir.Loop):
    """A check's count (its `_into` call, adding to the sink) on its per-step buffers' storages, once
    after the loop, or None where it reads anything else of a step."""
    args = []
    for a in st.call.args:
        if str(a) in loop.binds and not isinstance(a, Code):
            args.append(code("{full}", full=loop.binds[str(a)]))
        elif any(n == ir.LOOP_VAR or n in loop.binds for n, _, _ in arg_names(a)):
            return None
        else:
            args.append(a)
    return ir.Stmt(Call(st.call.kernel, args, wrap=st.call.wrap), st.owner)


class _Kept(str):
    """A member's argument that is the kernel's own scratch (`_Steps.scratch`: its step's rows)."""


def _folded(st: ir.Stmt, steps: _Steps):
    """A moving-average baseline in a loop block (rows.moving_average_baseline) as its row half, a
    member (rows.baseline_keep, keeping each row's weighted cost of the step in scratch), and its
    fold after the loop ((rw, state, slots, decay, update) of `stepped`'s spec), or None where
    the steps do not each have their own slot."""
    L, rw, state, slot, decay, b, update = st.call.args
    if not (isinstance(slot, ir.PerStep) and isinstance(slot.off, (int, type(None))) and slot.size >= 2):
        return None   # a slot shared by the steps: a later step reads what an earlier one folds in
    slots = tuple(slot.at(t) for t in range(steps.loop.length))
    keep = _Kept(steps.scratch())
    member = ir.Stmt(Call(KernelRef("rows", "baseline_keep"), (L, rw, state, slot, b, keep)), st.owner)
    return member, (steps.arg(rw), steps.arg(state), slots, steps.arg(decay), steps.arg(update))


def _one_kernel(loop: ir.Loop, per: int):
    """The loop block as [its pre, one rows.stepped call, its checks after it], or None."""
    steps, members, after, folds = _Steps(loop), [], [], []
    for st in loop.body:
        if isinstance(st, ir.Stmt) and st.kernel == ("rows", "moving_average_baseline") and not st.call.indent:
            got = _folded(st, steps)
            if got is None:
                return None
            members.append((got[0], ""))
            folds.append(got[1])
        elif isinstance(st, ir.Block):
            got = _tested(st, steps)
            if not got:
                return None
            members += got
        elif isinstance(st, ir.Stmt) and st.call is not None and any(type(a) is str and a == "sink_"
                                                                     for a in st.call.args):
            after.append(_hoisted(st, loop))
            if after[-1] is None:
                return None
        elif _loop_of(st) is not None:
            members.append((st, ""))
        else:
            return None
    for st, _ in members:
        for a in st.call.args:
            if str(a) in loop.binds and _rows(a, per) is not None:
                steps.rows[loop.binds[str(a)]] = _rows(a, per)
    written, past, rows, spec = set(), set(), set(), []
    for st, test in members:
        lp = _loop_of(st, indented=True)
        for key, (w, here) in _touched(st, lp, steps.memory).items():
            written |= {key} if w else set()
            past |= set() if here else {key}
        rows.add(steps.over_rows(st.call.args[lp.args.index(lp.over)], per))
        alias, name = st.kernel
        spec.append((f"{CUDA_FAMILIES.get(alias, alias)}.{name}", tuple(steps.arg(a) for a in st.call.args), test))
    if written & past or len(rows) != 1 or None in rows or len(steps.params) > MAX_STEP_ARGS:
        return None   # a row reads what another row writes (at another step), or rows unknown or unequal
    args = [steps.records.get(n, code("{n}", n=n)) for n in steps.params]
    views = tuple((name, *at) for name, at in sorted(steps.views.items(), key=lambda v: (v[1][0][0], int(v[1][0][1:]),
                                                                                        v[1][1])))
    full = (loop.length, loop.reverse, len(args), views, tuple(spec), tuple(folds))
    call = Call(KernelRef("rows", "stepped"), [Const(repr(full)), *args])
    return [*loop.pre, ir.Stmt(call, members[0][0].owner), *after]


def stepped(stmts: list, per: int) -> list:
    """Each loop block that one kernel can run (`_one_kernel`) as that kernel's launch."""
    out = []
    for st in stmts:
        got = _one_kernel(st, per) if isinstance(st, ir.Loop) and st.body else None
        out += got if got is not None else [st]
    return out
