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
  all its steps (lowering/stepped.py, kernels/cuda/fused.py), instead of a launch per kernel and
  step; a check in it (its `_into` count) counts the whole per-step buffer once, after it;
* `fused`: a run of declared kernels over the same rows is one `rows.fused` (kernels/cuda/fused.py;
  which may join: kernels/fusion.py). A member may float up to the run past statements that name
  none of its arrays (a product of other arrays, a noise fill, a line of the sink's), not past a
  check's block or a loop; a member no open run takes opens one, and the earlier runs stay open
  (a member joins the newest that takes it); a member over other rows (or none known) joins as
  side work, its own loop, where the arrays it shares with the run are only read, or added to.
  A check's count (its `_into`, a declared row kernel adding to a word of the sink) joins as any
  member does. Two runs with nothing between them are one where one kernel takes both. What a
  call reaches, which these joins read: lowering/access.py.

`joined(stmts, per)` runs them in the order `spread_noise`, `bias_apart`, `stepped`, `fused`,
`zeroed`, `sums_last` (a zeroed buffer joins the kernels over its rows first, the gradient's as
their side work); a loop block left as a loop has its `pre` and `body` joined each on their own.
"""
from __future__ import annotations

from typing import NamedTuple

from ..calls import Call, Code, Const, Head, KernelRef, StepArg, View
from ..estimators.protocol import NO_GRAD_1D, NoGrad
from ..kernels import fusion
from ..targets import CUDA_FAMILIES
from . import access, ir
from .stepped import stepped   # a loop block as one kernel (its own module)

MAX_ARGS = 40   # arguments of a joined kernel at most (a launch's parameters: 4 KB, 72 bytes a 2D array)


def joined(stmts: list, per: int) -> list:
    """The statements with their launches joined (`per`: the step's rows per data row)."""
    return sums_last(zeroed(fused(stepped(bias_apart(spread_noise(stmts)), per), per)))


# ----------------------------------------------------------------- zeroed buffers, loss terms
def _join_key(st):
    """What a statement joins with in one launch (None: nothing): zeroed buffers with each other;
    a loss term with those of the same weights and totals."""
    if not isinstance(st, ir.Stmt) or st.call is None:
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
        elif isinstance(st, ir.Stmt) and st.kernel == ("core", "affine_fwd") and not st.call.assign:
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
        if isinstance(st, ir.Stmt) and st.kernel == ("core", "affine_bwd") and not st.call.assign:
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
    return (isinstance(st, ir.Stmt) and st.kernel == _SUM and not st.call.assign
            and isinstance(st.call.args[1], View) and not isinstance(st.call.args[0], Code))


def _sum_reach(st) -> set:
    g, out = st.call.args
    return {*access.memory(g)[0], str(out), "grad"}


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
            out.update(access.memory(a)[0])
    return out - {access.VIEWS} | ({str(a) for a in st.call.args if isinstance(a, StepArg) and str(a) in access.WHOLE})


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
    values, one launch over every row (which may join others) instead of a fill and a spread; a
    fill of narrow rows (`fill_*_narrow`, the CPU's) the plain fill."""
    out, i = [], 0
    while i < len(stmts):
        st, nxt = stmts[i], stmts[i + 1] if i + 1 < len(stmts) else None
        if isinstance(st, ir.Loop):
            out.append(st.mapped(spread_noise))
        elif _spread_pair(st, nxt):
            buf, parts = nxt.call.args
            _, seed, stream, step, row0 = st.call.args
            fill = KernelRef("noise", f"{st.kernel[1].removesuffix('_narrow')}_spread")
            out.append(ir.Stmt(Call(fill, (buf, seed, stream, step, row0, parts)), st.owner))
            i += 1
        elif isinstance(st, ir.Stmt) and st.kernel is not None and st.kernel[0] == "noise" \
                and st.kernel[1].endswith("_narrow"):
            # the CPU's fill of narrow rows (cpu/noise_narrow.py) is the plain fill on the device
            plain = Call(KernelRef("noise", st.kernel[1].removesuffix("_narrow")), st.call.args, st.call.assign)
            out.append(ir.Stmt(plain, st.owner))
        else:
            out.append(st)
        i += 1
    return out


def _spread_pair(st, nxt) -> bool:
    """Whether st fills the head of a buffer that nxt spreads over its rows (with the same parts)."""
    if not (isinstance(st, ir.Stmt) and isinstance(nxt, ir.Stmt) and st.call is not None and nxt.call is not None):
        return False
    if st.kernel[0] != "noise" or nxt.kernel != ("rows", "expand_rows"):
        return False
    kind = st.kernel[1][len("fill_"):].removesuffix("_narrow") if st.kernel[1].startswith("fill_") else None
    if kind not in _SPREAD or len(st.call.args) != 5 or not isinstance(st.call.args[0], Head):
        return False
    head, (buf, parts) = st.call.args[0], nxt.call.args
    return head.buffer == str(buf) and head.parts == parts


# ----------------------------------------------------------------- declared kernels over the same rows
class _Member(NamedTuple):
    """A declared kernel's call as a run reads it, computed once: its arguments' keys, what it
    touches (at its row, and each access as past its row), its names and its loop's rows."""
    st: ir.Stmt
    args: set
    touched: dict
    apart: dict
    names: set
    own: object

    @classmethod
    def of(cls, st, loop, per: int) -> _Member:
        touched = access.touched(st, loop)
        return cls(st, access.args_of(st), touched, access.apart(touched), access.names_of(st),
                   access.rows_of(st.call.args[loop.args.index(loop.over)], per))


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

    def takes(self, m: _Member, over) -> bool:
        """Whether `m` may join at the rows `over`, or as side work (None)."""
        if m.names & self.past or len(self.args | m.args) > MAX_ARGS:
            return False
        if over is None:   # side work: its rows are not the run's, so an array it shares only read or added to
            return self.state.fits(m.apart) and self.side.fits(m.apart)
        return (self.rows is None or over == self.rows) and self.state.fits(m.touched) and self.side.fits(m.apart)

    def add(self, m: _Member, over) -> None:
        """`m` at the run's rows (`over`), or as side work (None)."""
        self.members.append((m.st, m, over is None))
        self.args |= m.args
        if over is None:
            self.side.add(m.apart)
            return
        self.state.add(m.touched)
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
        for k, (st, _, side) in enumerate(self.members):
            pos = []
            for a in st.call.args:
                key = access.arg_key(a)
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
    (kernels/fusion.py), its loop's array has the run's rows (`access.rows_of`; a member whose
    rows are not known, or that no run over its own rows takes, joins as side work, `_Run`; the
    joined kernel checks the counts at launch too), the statements it floats past name none of
    its arrays and the run's arguments stay at most MAX_ARGS. A member that no open run takes
    opens one, and the earlier runs stay open: a later member joins the newest run that takes it,
    floating past the runs after it (whose members' names it must not name either), so a check of
    other rows between two kernels keeps them in one kernel. Last, two runs with nothing between
    them are one where one kernel takes both (`_adjacent_joined`)."""
    out, runs = [], []   # runs: the open ones, in their order in `out`
    for st in stmts:
        loop = access.loop_of(st)
        if loop is not None:
            m = _Member.of(st, loop, per)
            over = m.own
            at = next((k for k in range(len(runs) - 1, -1, -1) if runs[k].takes(m, over)), None)
            if at is None and over is not None:   # other rows: side work of the newest run that takes it
                at = next((k for k in range(len(runs) - 1, -1, -1) if runs[k].takes(m, None)), None)
                over = None if at is not None else over
            if at is None:
                runs.append(_Run())
                out.append(runs[-1])
                at = len(runs) - 1
            runs[at].add(m, over)
            for earlier in runs[:at]:   # they are printed before it: a member joining them floats past it
                earlier.past |= m.names
            continue
        if isinstance(st, (ir.If, ir.For, ir.Loop)):
            runs = []   # nothing floats past a check's raise or a loop
        for run in runs:
            run.past.update(n for n, _, _ in st.names if n not in access.NO_MEMORY)
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
    for _, m, _ in members:
        over = rows if m.own == rows else None
        if not run.takes(m, over):
            return None
        run.add(m, over)
    return run
