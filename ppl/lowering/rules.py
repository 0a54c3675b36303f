"""Lowering rules of the ops whose code is more than their op-table templates.

As JAX keeps a lowering rule per primitive, ARRAY_RULES maps an op kind to Rule(forward,
backward); the walk (walk.py) calls them where it would render the op's templates. ROW_RULES
does the same for the row-fused lowering (rowfused.RowFusedLowering), whose code of an op is
otherwise its kernels' bodies rewritten for one row: a user's functions have no body to rewrite
and are called per row, as the array rules call them.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..calls import Flat, KERNELS, call, code, render
from ..statements import Assign, Do, cast, index, user_call
from ..estimators import NO_GRAD, REGISTRY
from ..ops import OPS
from .ir import STEP_INDEX, per_step
from .layout import _ident


# The ops whose array code is more than their op-table templates, as JAX keeps a lowering rule
# per primitive: kind -> Rule(forward, backward). forward(lowering, node, ins, out) writes the node's
# value (a layer) or cost rows (a head); backward(lowering, node, ins, gins, gout, out, rows) adds the
# VJP of gout (a head: the cost cotangents cw) into gins (NO_GRAD where no gradient is wanted).
@dataclass(frozen=True)
class Rule:
    forward: object
    backward: object


def _for_rows(lowering, rows_of, fn: str, args: list, into=None):
    """A user's function called on every row (as many as `rows_of` has): on row r of each buffer
    of `args`; `into`: the buffer whose row r takes its value."""
    vals = {f"a{j}": a for j, a in enumerate(args)}
    body = "{fn}(" + ", ".join(f"{{a{j}}}[{{r}}]" for j in range(len(args))) + ")"
    lowering.emit_for("r", code("{n}.shape[0]", n=rows_of),
                      [code(("{into}[{r}] = " if into is not None else "") + body, fn=fn, r="r", into=into, **vals)])


def _user_layer_fwd(lowering, n, ins, out):
    """A user layer: its @njit function per row."""
    fname = f"ul_{n.name}"
    lowering.builder.globals[fname] = n.attrs["fn"]
    _for_rows(lowering, out, fname, [*ins, out])


def _user_layer_bwd(lowering, n, ins, gins, gout, out, rows):
    """The user's VJP writes each input row's cotangent into a scratch row."""
    gname = f"ulg_{n.name}"
    lowering.builder.globals[gname] = n.attrs["grad"]
    scratch = [lowering.buf2(f"s{j}_{n.name}", x.width, rows=rows) for j, x in enumerate(n.inputs)]
    _for_rows(lowering, gout, gname, [*ins, out, gout, *scratch])
    for s, gi in zip(scratch, gins):
        if gi is not NO_GRAD:
            lowering.emit(call(KERNELS.rows.add_from_cols, s, 0, gi))


# ----- a loop's placeholders and outputs (ppl/lowering/loops.py); a body node's storage, all its
# steps, is its buffer's name with loops.STORE (only these read a body's buffers outside its block)
def _carry_fwd(lowering, n, ins, out):
    """The carry at the start of a step: init at step 0, the carry's node of the previous step after."""
    loop = lowering.body_loop()
    src = lowering.stored_values(loop.carry_out[n.attrs["index"]])
    lowering.emit_if(code("{it} == 0", it=STEP_INDEX), [call(KERNELS.core.copy_fwd, ins[0], out)],
                     [call(KERNELS.core.copy_fwd, lowering.previous_step(src, loop.length), out)])


def _carry_bwd(lowering, n, ins, gins, gout, out, rows):
    """Its cotangent into the carry's node at the previous step (init's at step 0)."""
    loop = lowering.body_loop()
    g_out = lowering.stored_cotangent(loop.carry_out[n.attrs["index"]])
    to_previous = ([call(KERNELS.core.copy_bwd, gout, lowering.previous_step(g_out, loop.length))]
                   if g_out is not None else [])
    to_init = [call(KERNELS.core.copy_bwd, gout, gins[0])] if gins[0] is not NO_GRAD else []
    lowering.emit_if(code("{it} > 0", it=STEP_INDEX), to_previous, to_init)   # an empty branch: pass


def _x_fwd(lowering, n, ins, out):
    """The step's x: its columns of xs, or the step index."""
    if n.inputs:
        lowering.emit(call(KERNELS.rows.take_cols, ins[0], per_step(n.width), out))
    else:
        lowering.emit(call(KERNELS.rows.fill2, out, code("{float}({it})", float="float", it=STEP_INDEX)))


def _x_bwd(lowering, n, ins, gins, gout, out, rows):
    if n.inputs and gins[0] is not NO_GRAD:
        lowering.emit(call(KERNELS.rows.add_to_cols, gout, per_step(n.width), gins[0]))


def _last_fwd(lowering, n, ins, out):
    """The carry after the last step: its node's rows of the last step."""
    (c,) = n.inputs
    lowering.emit(call(KERNELS.core.copy_fwd, lowering.last_step(lowering.stored_values(c), lowering.loop_length(n)), out))


def _last_bwd(lowering, n, ins, gins, gout, out, rows):
    (c,) = n.inputs
    g = lowering.stored_cotangent(c)
    if g is not None:
        lowering.emit(call(KERNELS.core.copy_bwd, gout, lowering.last_step(g, lowering.loop_length(n))))


def _stack_fwd(lowering, n, ins, out):
    """A per-step output's steps side by side."""
    (y,) = n.inputs
    lowering.emit(call(KERNELS.core.stack_steps, lowering.storage_of(lowering.stored_values(y)), n.attrs['length'], out))


def _stack_bwd(lowering, n, ins, gins, gout, out, rows):
    (y,) = n.inputs
    g = lowering.stored_cotangent(y)
    if g is not None:
        lowering.emit(call(KERNELS.core.unstack_steps_bwd, gout, n.attrs['length'], lowering.storage_of(g)))


def _blackbox_fwd(lowering, n, ins, c):
    fname = f"bb_{n.name}"
    lowering.builder.globals[fname] = n.attrs["fn"]
    _for_rows(lowering, lowering.rw, fname, ins, into=c)


def _blackbox_bwd(lowering, n, ins, gins, cw, c, rows):
    gname = f"bbg_{n.name}"
    lowering.builder.globals[gname] = n.attrs["grad"]
    scratch = [lowering.buf2(f"s{j}_{n.name}", x.width) for j, x in enumerate(n.inputs)]
    _for_rows(lowering, lowering.rw, gname, [*ins, *scratch])
    for s, gi in zip(scratch, gins):
        if gi is not NO_GRAD:
            lowering.emit(call(KERNELS.rows.add_scaled_rows, s, cw, gi))


def _log_prob_fwd(lowering, n, ins, c):
    s = n.inputs[0]
    kern = lowering.dist(s).kernels
    if "log_prob_keep" in kern and any(gp is not NO_GRAD for gp in lowering.param_grads(s)):
        # keep sigma(logits) for the VJP (here or fused into the score estimator's)
        (a,) = s.inputs
        keep = lowering.keep_sigma(("log_prob", s), f"sig_{s.name}", a)
        fn, logits = lowering._row_constant(kern["log_prob_keep"], a)
        lowering.emit(call(fn, *logits, lowering.v(s), c, keep))
    else:
        lowering.call(kern["log_prob"], [*lowering.param_values(s), lowering.v(s)], [c], s)


def _log_prob_bwd(lowering, n, ins, gins, cw, c, rows):
    s = n.inputs[0]
    if REGISTRY[lowering.choices[s][0].estimator].fuses_log_prob and lowering.g_or_empty(s) is NO_GRAD:
        # d/da (cw log p) + w d/da log p = (cw + w) d/da log p: one VJP call, in s's backward
        lowering.absorb_log_prob_weight(s, cw)
        return
    # DReG stops the gradient of log q(z) into the distribution's parameters (only its value's)
    stops = REGISTRY[lowering.choices[s][0].estimator].stops_log_prob_params
    lowering.log_prob_vjp(s, cw, lowering.g_or_empty(s), params=not stops)


def _bernoulli_nll_fwd(lowering, n, ins, c):
    if lowering.g_or_empty(n.inputs[0]) is NO_GRAD:
        lowering.emit(render(OPS[n.kind].fwd, c=c, **lowering.op_values(n, ins)))   # the op's template
        return
    # keep sigma(logits) for the VJP: the cost's exp serves the backward too
    keep = lowering.keep_sigma(n, f"sig_{n.name}", n.inputs[0])
    fn, logits = lowering._row_constant("bernoulli_nll_keep", n.inputs[0])
    lowering.emit(call(fn, *logits, ins[1], c, keep))


def _bernoulli_nll_bwd(lowering, n, ins, gins, cw, c, rows):
    keep, rep = lowering.kept_sigma(n)
    if rep:
        lowering.emit(call(KERNELS.core.bernoulli_nll_kept_bwd_rep, *lowering.per_data_row(n.inputs[0]), ins[1],
                           keep, cw, *gins))
    elif keep is not None:
        lowering.emit(call(KERNELS.core.bernoulli_nll_kept_bwd, ins[0], ins[1], keep, cw, *gins))
    else:
        gs = {f"g{j}": g for j, g in enumerate(gins)}
        lowering.emit(render(OPS[n.kind].bwd, cw=cw, **gs, **lowering.op_values(n, ins)))


def _law_log_prob(lowering, n, ins, into):
    """log p(value | params) of a node of inputs (*params, value) and attribute law into the rows
    `into`: the law's log_prob kernel, its parameters checked first, as a node's are (a NaN or a
    non-positive scale raises)."""
    law = lowering.dist_of(n.attrs["law"])
    lowering.emit_param_checks(n, lambda p: call(KERNELS.rows.all_positive, lowering.v(p)), law=law, params=n.inputs[:-1])
    lowering.call(law.kernels["log_prob"], list(ins), [into], n)


def _law_nll_fwd(lowering, n, ins, c):
    """-log p(value | params) of a law without a head of its own: its log_prob, negated."""
    _law_log_prob(lowering, n, ins, c)
    lowering.emit(call(KERNELS.core.negate1, c))


def _law_nll_bwd(lowering, n, ins, gins, cw, c, rows):
    law = lowering.dist_of(n.attrs["law"])
    neg = lowering.buf1(f"ncw_{n.name}", rows=rows)
    lowering.emit(call(KERNELS.core.negated1, cw, neg))
    lowering.call(law.kernels["log_prob_bwd"], list(ins), [neg, *gins], n)


def _law_logp_fwd(lowering, n, ins, out):
    """log p(value | params) as a width-1 value: into its flat view."""
    _law_log_prob(lowering, n, ins, Flat(out))


def _law_logp_bwd(lowering, n, ins, gins, gout, out, rows):
    if all(g is NO_GRAD for g in gins):
        return
    law = lowering.dist_of(n.attrs["law"])
    lowering.call(law.kernels["log_prob_bwd"], list(ins), [Flat(gout), *gins], n)


def _bcast_fwd(lowering, n, ins, out):
    """out[r, j] = x[r, 0]: zeros plus the row-sum VJP of x (both targets have it)."""
    (x,) = ins
    lowering.emit(call(KERNELS.rows.fill2, out, 0.0))
    lowering.emit(call(KERNELS.core.row_sum_bwd, Flat(x), out))


def _bcast_bwd(lowering, n, ins, gins, gout, out, rows):
    """gx[r, 0] += sum_j gout[r, j]."""
    (gx,) = gins
    if gx is NO_GRAD:
        return
    t = lowering.buf1(f"bc_{n.name}", rows=rows)
    lowering.emit(call(KERNELS.core.row_sum_fwd, gout, t))
    lowering.emit(call(KERNELS.rows.add_rows, t, Flat(gx)))


def _law_kl_fwd(lowering, n, ins, c):
    """KL(q || p) in closed form from the law's kl kernel; the prior's parameters checked first
    (q's are checked where q is drawn)."""
    law = lowering.dist_of(n.attrs["law"])
    k = len(law.params)
    lowering.emit_param_checks(n, lambda p: call(KERNELS.rows.all_positive, lowering.v(p)), law=law, params=n.inputs[k:])
    lowering.call(law.kernels["kl"], list(ins), [c], n)


def _law_kl_bwd(lowering, n, ins, gins, cw, c, rows):
    law = lowering.dist_of(n.attrs["law"])
    lowering.call(law.kernels["kl_bwd"], list(ins), [cw, *gins], n)


# The row-fused step's rules, called as the array rules are (the walk's, walk.py): forward(sl, node,
# ins, out) writes the node's value (a layer) or cost (a head) into the local `out`; backward(sl, node,
# ins, gins, gout, out, rows) adds the VJP of the local gout (a head: the row weight) into the inputs'
# cotangent locals. A user's function reads and writes 1D arrays: here
# one-value workspace rows (sl.scratch_row), filled from the row's locals before each call (an
# antithetic pair's other configuration, or the forward of the same row, may have filled them since).
def _fill_rows(sl, n, tag, values) -> list:
    rows = [sl.scratch_row(f"u{tag}{j}_{n.name}") for j in range(len(values))]
    for r, v in zip(rows, values):
        sl.put(Assign(index(r, 0), v))
    return rows


def _user_fn(sl, n, key, prefix) -> str:
    name = f"{prefix}_{_ident(n.name)}"
    sl.builder.globals[name] = n.attrs[key]   # a global of the step's module: not cached on disk (compiler)
    return name


def _log_prob_row_fwd(sl, n, ins, c):
    """log p(node | params) of the row: the law's log_prob kernel."""
    s = n.inputs[0]
    sl.call(sl.dist(s).kernels["log_prob"], [*sl.params_of(s), sl.val(s)], [c])


def _log_prob_row_bwd(sl, n, ins, gins, cw, c, rows):
    sl.log_prob_vjp_row(n.inputs[0], cw, with_value=True)


def _blackbox_row_fwd(sl, n, ins, c):
    ins = _fill_rows(sl, n, "a", [sl.val(x) for x in n.inputs])
    sl.put(Assign(c, cast(user_call(_user_fn(sl, n, 'fn', 'bb'), *ins))))   # the array rule's store into c


def _blackbox_row_bwd(sl, n, ins, gins, cw, c, rows):
    gins = [sl.cot(x) for x in n.inputs]
    if n.attrs["grad"] is None or not any(gins):
        return
    ins = _fill_rows(sl, n, "a", [sl.val(x) for x in n.inputs])
    gs = [sl.scratch_row(f"ug{j}_{n.name}") for j in range(len(n.inputs))]
    sl.put(Do(user_call(_user_fn(sl, n, 'grad', 'bbg'), *ins, *gs)))
    for s, gi in zip(gs, gins):
        if gi is not None:
            sl.row_call(call(KERNELS.rows.add_scaled_rows, f"{s}[0]", cw, gi))


def _user_layer_row_fwd(sl, n, ins, out):
    ins = _fill_rows(sl, n, "a", [sl.val(x) for x in n.inputs])
    o = sl.scratch_row(f"uo_{n.name}")
    sl.put(Do(user_call(_user_fn(sl, n, 'fn', 'ul'), *ins, o)))
    sl.put(Assign(out, index(o, 0)))


def _user_layer_row_bwd(sl, n, ins, gins, gout, out, rows):
    gins = [sl.cot(x) for x in n.inputs]
    if n.attrs["grad"] is None or not any(gins):
        return
    ins = _fill_rows(sl, n, "a", [sl.val(x) for x in n.inputs])
    o, go = sl.scratch_row(f"uo_{n.name}"), sl.scratch_row(f"ugo_{n.name}")
    sl.put(Assign(index(o, 0), sl.val(n)))
    sl.put(Assign(index(go, 0), gout))
    gs = [sl.scratch_row(f"ug{j}_{n.name}") for j in range(len(n.inputs))]
    sl.put(Do(user_call(_user_fn(sl, n, 'grad', 'ulg'), *ins, o, go, *gs)))
    for s, gi in zip(gs, gins):
        if gi is not None:
            sl.row_call(call(KERNELS.rows.add_from_cols, f"{s}[0]", 0, gi))


ROW_RULES = {
    "log_prob": Rule(_log_prob_row_fwd, _log_prob_row_bwd),
    "user_layer": Rule(_user_layer_row_fwd, _user_layer_row_bwd),
    "blackbox": Rule(_blackbox_row_fwd, _blackbox_row_bwd),
}


ARRAY_RULES = {
    "bcast": Rule(_bcast_fwd, _bcast_bwd),
    "user_layer": Rule(_user_layer_fwd, _user_layer_bwd),
    "blackbox": Rule(_blackbox_fwd, _blackbox_bwd),
    "carry": Rule(_carry_fwd, _carry_bwd),
    "scan_x": Rule(_x_fwd, _x_bwd),
    "scan_last": Rule(_last_fwd, _last_bwd),
    "scan_stack": Rule(_stack_fwd, _stack_bwd),
    "log_prob": Rule(_log_prob_fwd, _log_prob_bwd),
    "bernoulli_nll": Rule(_bernoulli_nll_fwd, _bernoulli_nll_bwd),
    "law_nll": Rule(_law_nll_fwd, _law_nll_bwd),
    "law_logp": Rule(_law_logp_fwd, _law_logp_bwd),
    "law_kl": Rule(_law_kl_fwd, _law_kl_bwd),
}
