"""Array-lowering rules of the ops whose code is more than their op-table templates.

As JAX keeps a lowering rule per primitive, ARRAY_RULES maps an op kind to Rule(forward,
backward); lowering.Lowering calls them where it would render the op's templates.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..estimators import NO_GRAD, REGISTRY


# The ops whose array code is more than their op-table templates, as JAX keeps a lowering rule
# per primitive: kind -> Rule(forward, backward). forward(lw, node, ins, out) writes the node's
# value (a layer) or cost rows (a head); backward(lw, node, ins, gins, gout, out, rows) adds the
# VJP of gout (a head: the cost cotangents cw) into gins (NO_GRAD where no gradient is wanted).
@dataclass(frozen=True)
class Rule:
    forward: object
    backward: object


def _user_layer_fwd(lw, n, ins, out):
    """A user layer: its @njit function per row."""
    fname = f"ul_{n.name}"
    lw.globals[fname] = n.attrs["fn"]
    lw.emit(f"for r in range({out}.shape[0]):")
    lw.emit(f"    {fname}({''.join(i + '[r], ' for i in ins)}{out}[r])")


def _user_layer_bwd(lw, n, ins, gins, gout, out, rows):
    """The user's VJP writes each input row's cotangent into a scratch row."""
    gname = f"ulg_{n.name}"
    lw.globals[gname] = n.attrs["grad"]
    scratch = [lw.buf2(f"s{j}_{n.name}", x.width, rows=rows) for j, x in enumerate(n.inputs)]
    lw.emit(f"for r in range({gout}.shape[0]):")
    lw.emit(f"    {gname}({''.join(i + '[r], ' for i in ins)}{out}[r], {gout}[r], "
            f"{', '.join(s + '[r]' for s in scratch)})")
    for s, gi in zip(scratch, gins):
        if gi is not NO_GRAD:
            lw.emit(f"rows.add_from_cols({s}, 0, {gi})")


def _blackbox_fwd(lw, n, ins, c):
    fname = f"bb_{n.name}"
    lw.globals[fname] = n.attrs["fn"]
    lw.emit(f"for r in range({lw.rw}.shape[0]):")
    lw.emit(f"    {c}[r] = {fname}({', '.join(i + '[r]' for i in ins)})")


def _blackbox_bwd(lw, n, ins, gins, cw, c, rows):
    gname = f"bbg_{n.name}"
    lw.globals[gname] = n.attrs["grad"]
    scratch = [lw.buf2(f"s{j}_{n.name}", x.width) for j, x in enumerate(n.inputs)]
    lw.emit(f"for r in range({lw.rw}.shape[0]):")
    lw.emit(f"    {gname}({', '.join(i + '[r]' for i in ins)}, {', '.join(s + '[r]' for s in scratch)})")
    for s, gi in zip(scratch, gins):
        if gi is not NO_GRAD:
            lw.emit(f"rows.add_scaled_rows({s}, {cw}, {gi})")


def _log_prob_fwd(lw, n, ins, c):
    s = n.inputs[0]
    kern = lw.dist(s).kernels
    if "log_prob_keep" in kern and any(gp is not NO_GRAD for gp in lw.param_grads(s)):
        # keep sigma(logits) for the VJP (here or fused into the score estimator's)
        (a,) = s.inputs
        if ("log_prob", s) not in lw.kept:
            lw.kept[("log_prob", s)] = lw.buf2(f"sig_{s.name}", s.width, rows=lw.kept_rows(a))
            if lw.reads_rep(a):
                lw.kept_rep.add(("log_prob", s))
        keep = lw.kept[("log_prob", s)]
        fn, logits = lw._row_constant(kern["log_prob_keep"], a)
        lw.emit(f"core.{fn}({logits}, {lw.v(s)}, {c}, {keep})")
    else:
        lw.call(kern["log_prob"], [*lw.param_values(s), lw.v(s)], [c], s)


def _log_prob_bwd(lw, n, ins, gins, cw, c, rows):
    s = n.inputs[0]
    if REGISTRY[lw.choices[s][0].estimator].fuses_log_prob and lw.g_or_empty(s) is NO_GRAD:
        # d/da (cw log p) + w d/da log p = (cw + w) d/da log p: one VJP call, in s's backward
        lw.log_prob_weights.setdefault(s, []).append(cw)
        return
    # DReG stops the gradient of log q(z) into the distribution's parameters (only its value's)
    lw.log_prob_vjp(s, cw, lw.g_or_empty(s), params=not REGISTRY[lw.choices[s][0].estimator].stops_log_prob_params)


def _bernoulli_nll_fwd(lw, n, ins, c):
    if lw.g_or_empty(n.inputs[0]) is NO_GRAD:
        lw.emit_template_fwd(n, ins, c)
        return
    # keep sigma(logits) for the VJP: the cost's exp serves the backward too
    keep = lw.buf2(f"sig_{n.name}", n.inputs[0].width, rows=lw.kept_rows(n.inputs[0]))
    lw.kept[n] = keep
    if lw.reads_rep(n.inputs[0]):
        lw.kept_rep.add(n)
    fn, logits = lw._row_constant("bernoulli_nll_keep", n.inputs[0])
    lw.emit(f"core.{fn}({logits}, {ins[1]}, {c}, {keep})")


def _bernoulli_nll_bwd(lw, n, ins, gins, cw, c, rows):
    if n in lw.kept_rep:
        lw.emit(f"core.bernoulli_nll_kept_bwd_rep({lw.per_data_row(n.inputs[0])}, {ins[1]}, {lw.kept[n]}, {cw}, "
                f"{', '.join(map(str, gins))})")
    elif n in lw.kept:
        lw.emit(f"core.bernoulli_nll_kept_bwd({ins[0]}, {ins[1]}, {lw.kept[n]}, {cw}, {', '.join(map(str, gins))})")
    else:
        lw.emit_template_bwd(n, ins, gins)


def _law_nll_fwd(lw, n, ins, c):
    """-log p(value | params) of a law without a head of its own: its log_prob kernel, negated;
    its parameters checked first, as a node's are (a NaN or a non-positive scale raises)."""
    law = lw.dist_of(n.attrs["law"])
    lw.emit_positive_checks(n, lambda p: f"rows.all_positive({lw.v(p)})", law=law, params=n.inputs[:-1])
    lw.call(law.kernels["log_prob"], list(ins), [c], n)
    lw.emit(f"core.negate1({c})")


def _law_nll_bwd(lw, n, ins, gins, cw, c, rows):
    law = lw.dist_of(n.attrs["law"])
    neg = lw.buf1(f"ncw_{n.name}", rows=rows)
    lw.emit(f"core.negated1({cw}, {neg})")
    lw.call(law.kernels["log_prob_bwd"], list(ins), [neg, *gins], n)


def _bcast_fwd(lw, n, ins, out):
    """out[r, j] = x[r, 0]: zeros plus the row-sum VJP of x (both targets have it)."""
    (x,) = ins
    lw.emit(f"rows.fill2({out}, 0.0)")
    lw.emit(f"core.row_sum_bwd({x}.reshape({x}.shape[0]), {out})")


def _bcast_bwd(lw, n, ins, gins, gout, out, rows):
    """gx[r, 0] += sum_j gout[r, j]."""
    (gx,) = gins
    if gx is NO_GRAD:
        return
    t = lw.buf1(f"bc_{n.name}", rows=rows)
    lw.emit(f"core.row_sum_fwd({gout}, {t})")
    lw.emit(f"rows.add_rows({t}, {gx}.reshape({gx}.shape[0]))")


def _law_kl_fwd(lw, n, ins, c):
    """KL(q || p) in closed form from the law's kl kernel; the prior's parameters checked first
    (q's are checked where q is drawn)."""
    law = lw.dist_of(n.attrs["law"])
    k = len(law.params)
    lw.emit_positive_checks(n, lambda p: f"rows.all_positive({lw.v(p)})", law=law, params=n.inputs[k:])
    lw.call(law.kernels["kl"], list(ins), [c], n)


def _law_kl_bwd(lw, n, ins, gins, cw, c, rows):
    law = lw.dist_of(n.attrs["law"])
    lw.call(law.kernels["kl_bwd"], list(ins), [cw, *gins], n)


ARRAY_RULES = {
    "bcast": Rule(_bcast_fwd, _bcast_bwd),
    "user_layer": Rule(_user_layer_fwd, _user_layer_bwd),
    "blackbox": Rule(_blackbox_fwd, _blackbox_bwd),
    "log_prob": Rule(_log_prob_fwd, _log_prob_bwd),
    "bernoulli_nll": Rule(_bernoulli_nll_fwd, _bernoulli_nll_bwd),
    "law_nll": Rule(_law_nll_fwd, _law_nll_bwd),
    "law_kl": Rule(_law_kl_fwd, _law_kl_bwd),
}
