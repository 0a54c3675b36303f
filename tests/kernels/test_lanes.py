"""kernels/lanes.py: the lanes rewrite of the declared row bodies, run as it runs on a GPU.

Each lane of a row is a Python thread; the lanes combine what they accumulated and meet at a
barrier (``lanes_sum`` a plain sum of the lanes' values). The oracle is the CPU kernel on the same
inputs (the registry's parity cases: 4 rows, 6 columns, float64): every array argument after the
call, at 1e-12 (only the order of a row's sums differs). The lanes are 4, so a row's columns fall
to every lane unevenly (2, 2, 1, 1). The test of the test: with lanes that do not combine their
sums, the row sums come out wrong.
"""
import inspect
import threading
import time

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ppl.kernels import families, parity_cases, registry
from ppl.kernels.declare import declared
from ppl.kernels.lanes import NoLaneForm, lane_body
from ppl.kernels.parity_cases import Gen

W = 4


def python_lanes(local, combine=True):
    """The lanes helpers over threads: each thread's `local` holds its lane, the row's slots and
    its barrier."""
    def make(fn):
        def helper(v, width):
            local.slots[local.lane] = v
            local.barrier.wait()
            out = fn(local.slots[:width]) if combine else v
            local.barrier.wait()
            return out
        return helper

    def total(vals):
        out = vals[0]
        for x in vals[1:]:
            out = out + x
        return out

    return {"lanes_sum": make(total), "lanes_any": make(lambda v: any(bool(x) for x in v)),
            "lanes_all": make(lambda v: all(bool(x) for x in v)),
            "lanes_sync": lambda width: local.barrier.wait()}


def run_rows(body, args, n_rows, combine=True):
    """The lanes form of ``body`` over n_rows rows, W threads a row."""
    local = threading.local()
    run_lanes(lane_body(body, python_lanes(local, combine)), local, args, n_rows)


def run_lanes(form, local, args, n_rows, delay_lane0=0.0):
    """form(r, lane_, W, *args) for each of n_rows rows on W threads, `local` the helpers' (python_lanes);
    lane 0 starts `delay_lane0` seconds late."""
    errors = []
    for r in range(n_rows):
        barrier, slots = threading.Barrier(W, timeout=20), [None] * W

        def lane(lane_, r=r, barrier=barrier, slots=slots):
            local.lane, local.barrier, local.slots = lane_, barrier, slots
            if lane_ == 0 and delay_lane0:
                time.sleep(delay_lane0)
            try:
                form(r, lane_, W, *args)
            except Exception as exc:   # reported below, with the lane
                errors.append((lane_, exc))
                barrier.abort()
        threads = [threading.Thread(target=lane, args=(i,)) for i in range(W)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0][1]


parity_cases.declare()
ROWS = {}   # name: (CPU kernel, row body, the argument whose rows are the rows, its arguments, parity case)
for fam in families.modules():
    cases = {g.name: g.args for g in registry.kernels() if g.args is not None and "cpu" in g.impls}
    for name, k in declared(fam).items():
        d = getattr(k, "__declared__", None)
        if d is not None and d.shape == "rows" and name in cases:
            ROWS[name] = (k, d.body, d.over, d.args, cases[name])
    for name, make in getattr(fam, "CUDA", {}).items():   # the row bodies given to cuda_launcher
        gens = getattr(make(), "__kernels__", []) if callable(make) and name in cases else []
        for g in gens:
            if isinstance(g, registry.Rows):
                k = getattr(fam, name)
                ROWS[name] = (k, g.fn, g.over, list(inspect.signature(k.py_func).parameters), cases[name])


def _formed(name):
    try:
        lane_body(ROWS[name][1], python_lanes(threading.local()))
    except NoLaneForm as exc:
        return "no loop" not in str(exc) and None
    return True


_FORMS = {n: _formed(n) for n in ROWS}   # each row body's lanes form made once, at collection
FORMED = sorted(n for n, f in _FORMS.items() if f)   # the others keep one thread per row
REFUSED = sorted(n for n, f in _FORMS.items() if f is False)   # with a loop the rewrite cannot spread


def _case(name, seed=0):
    k, body, over, args, spec = ROWS[name]
    build = spec if callable(spec) else spec[0]
    built = build(Gen(seed, np.float64))
    n_rows = dict(zip(args, built))[over].shape[0]
    return k, body, built, n_rows


@pytest.mark.parametrize("name", FORMED)
def test_lanes_form_against_the_cpu_kernel(name):
    k, body, built, n_rows = _case(name)
    want = [a.copy() if isinstance(a, np.ndarray) else a for a in built]
    got = [a.copy() if isinstance(a, np.ndarray) else a for a in built]
    k(*want)
    run_rows(body, got, n_rows)
    for i, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, np.ndarray):
            assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"{name}: argument {i}")


def test_most_row_bodies_have_a_lanes_form():
    """Of the row bodies with a loop over their columns (one without is a thread's work), most
    are spread over a warp."""
    assert len(FORMED) >= 90 and len(FORMED) > 1.5 * len(REFUSED), (len(FORMED), len(REFUSED), len(ROWS))


def test_lanes_that_do_not_combine_give_wrong_row_sums():
    """The test of the test: bernoulli_log_prob with each lane's partial sum as the row's."""
    k, body, built, n_rows = _case("bernoulli_log_prob")
    want = [a.copy() if isinstance(a, np.ndarray) else a for a in built]
    got = [a.copy() if isinstance(a, np.ndarray) else a for a in built]
    k(*want)
    run_rows(body, got, n_rows, combine=False)
    assert not np.allclose(got[-1], want[-1], rtol=1e-3)


def _start(r, a, out):
    s = 1.5
    flag = False
    for j in range(1, a.shape[1]):
        s -= a[r, j]
        flag |= a[r, j] > 2.0
    out[r, 0] = s + (10.0 if flag else 0.0)
    for j in range(a.shape[1]):
        out[r, j] += a[r, j] * s


def test_a_sum_from_a_value_and_a_flag_from_a_later_column():
    """A sum that starts from a value (lane 0 keeps it, the others start from 0), a loop from
    column 1, a flag set in one column only, then a loop reading the combined sum."""
    a = np.arange(14.0).reshape(2, 7) / 4
    want, got = np.zeros((2, 7)), np.zeros((2, 7))
    for r in range(2):
        _start(r, a, want)
    run_rows(_start, (a, got), 2)
    assert_allclose(got, want, rtol=1e-12)


def _carried(r, a, out):
    p = 0.0
    for j in range(a.shape[1]):
        out[r, j] = p
        p = a[r, j]


def _neighbour(r, a, out):
    for j in range(a.shape[1]):
        out[r, j] = a[r, j]
        a[r, j] = out[r, j - 1]


def _scatter(r, a, out):
    for j in range(a.shape[1]):
        out[r, 0] += a[r, j]


def _early(r, a, out):
    for j in range(a.shape[1]):
        if a[r, j] > 0:
            return
        out[r, j] = 1.0


def _temp_after(r, a, out):
    for j in range(a.shape[1]):
        t = a[r, j]
    out[r, 0] = t


@pytest.mark.parametrize("body,why", [(_carried, "carried"), (_neighbour, "another column"),
                                      (_scatter, "not the column"), (_early, "return"),
                                      (_temp_after, "read after")])
def test_bodies_the_rewrite_cannot_prove_keep_a_thread_per_row(body, why):
    with pytest.raises(NoLaneForm, match=why):
        lane_body(body, python_lanes(threading.local()))


def _rebar_by_lanes(args, W, lanes=None):
    """rebar_bwd's sums as the CUDA kernel makes them: each drawn row's columns over W lanes
    (`lanes` of them run), every lane's terms added."""
    from ppl.kernels.families import rebar as B
    a, sa, dzt, y, L, rw, gs, stride, off, span, configs, eta, loglam, delta, ga, geta, glam, train = args
    inv1, inv2 = B._inverse_temperatures(loglam, delta, a)
    lam_rows = train and configs == B.CONFIGS
    for r0 in range(a.shape[0]):
        if B.slot_local(r0, stride, span) == 0:
            for lane in range(W if lanes is None else lanes):
                de, dl = B._rebar_row(r0, r0 + off * stride, a, sa, dzt, y, L, rw, gs, stride, eta[0], inv1, inv2,
                                      delta, ga, train, lam_rows, lane, W)
                geta[0] += de
                glam[0] += dl


def test_rebar_rows_over_lanes_add_up_to_the_cpu_kernel():
    """REBAR's backward on the CUDA target gives a drawn row a warp's lanes: the lanes' cells of
    ga and their terms of the eta / temperature sums add up to the CPU kernel's (3 lanes over 6
    columns here); with a lane missing they do not (the test of the test)."""
    from ppl.kernels.families import rebar as B
    build = B.PARITY["rebar_bwd"]
    want = list(build(Gen(0, np.float64)))
    B.rebar_bwd(*want)
    for W, lanes, same in ((3, None, True), (3, 2, False)):
        got = list(build(Gen(0, np.float64)))
        _rebar_by_lanes(got, W, lanes)
        for i in (14, 15, 16):   # ga, geta, glam
            assert np.allclose(got[i], want[i], rtol=1e-12, atol=1e-12) == same, (W, lanes, i)
