"""kernels/fusion.py and kernels/cuda/fused.py: a run of declared kernels over the same rows as one
kernel, each row's lanes running the members in turn.

Oracles: the CPU kernels run one after another on the same inputs (the registry's parity cases,
4 rows, float64) for the joined row function run as on a GPU (each lane a Python thread, W = 4
lanes a row: every cells, rows and groups kernel with a parity case, in pairs); the members'
own CUDA launches, one by one, for `rows.fused` in the simulator (bit for bit: one lane a row
there). The tests of the tests: without the lanes meeting between members, a later member reads
what lane 0 has not yet written; a run that may not be joined (an array written at the row and
read past it) is split.
"""
import inspect
import threading

import numpy as np
import pytest
from numba import cuda
from numpy.testing import assert_allclose

from ppl.kernels import families, fusion, parity_cases, registry
from ppl.kernels.declare import declared
from ppl.kernels.lanes import NoLaneForm, lane_body
from ppl.kernels.math.words import add_word
from ppl.kernels.parity_cases import Gen

from test_lanes import W, python_lanes, run_lanes   # tests/kernels/: the lanes helpers over threads


parity_cases.declare()
_CASES = {k.name: k.args for k in registry.kernels() if k.args is not None and "cpu" in k.impls}
MEMBERS = {}   # name: (CPU kernel, its __declared__) of every cells / rows / groups kernel with a parity case
for _fam in families.modules():
    for _name, _k in declared(_fam).items():
        _d = getattr(_k, "__declared__", None)
        if _d is not None and _d.shape in fusion.SHAPES and _name in _CASES and _name not in getattr(_fam, "CUDA", {}):
            MEMBERS[_name] = (_k, _d)


def _built(name, seed):
    spec = _CASES[name]
    return (spec if callable(spec) else spec[0])(Gen(seed, np.float64))


def _seg(members, local, sync=True):
    """The joined row function of `members` ((shape, body, positions, loop array's position,
    group size's position)) over Python threads; without `sync`, the lanes do not meet between
    members."""
    helpers = python_lanes(local)
    glb, spec = dict(helpers), []
    for k, (shape, body, pos, over, K) in enumerate(members):
        formed = False
        if shape == "rows":
            try:
                glb[f"f{k}"], formed = lane_body(body, helpers), True
            except NoLaneForm:
                pass
        if not formed:
            glb[f"f{k}"] = getattr(body, "py_func", body)
        spec.append((shape, formed, pos, over, K))
    src = fusion.row_source(spec)
    if not sync:
        src = "\n".join(line for line in src.splitlines() if "lanes_sync" not in line) + "\n"
    exec(compile(src, "<joined row>", "exec"), glb)
    return glb["seg"]


def run_joined(members, args, n_rows, sync=True, delay_lane0=0.0):
    local = threading.local()
    run_lanes(_seg(members, local, sync), local, args, n_rows, delay_lane0)


def _member(name, seed, first):
    k, d = MEMBERS[name]
    built = list(_built(name, seed))
    pos = tuple(range(first, first + len(built)))
    over = pos[d.args.index(d.over)]
    K = pos[d.args.index(d.K)] if d.shape == "groups" else None
    n_rows = built[d.args.index(d.over)].shape[0]
    return k, built, (d.shape, d.body, pos, over, K), n_rows


def _pairs():
    """Each member with the next of those whose cases have as many rows (a ring per count)."""
    by_rows = {}
    for name, (k, d) in sorted(MEMBERS.items()):
        by_rows.setdefault(_built(name, 0)[d.args.index(d.over)].shape[0], []).append(name)
    return [(a, b) for names in by_rows.values() if len(names) > 1 for a, b in zip(names, names[1:] + names[:1])]


PAIRS = _pairs()


@pytest.mark.parametrize("first,second", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_a_joined_pair_is_its_members_one_after_the_other(first, second):
    k1, a1, m1, n1 = _member(first, 0, 0)
    k2, a2, m2, n2 = _member(second, 1, len(a1))
    assert n1 == n2
    want = [a.copy() if isinstance(a, np.ndarray) else a for a in a1 + a2]
    got = [a.copy() if isinstance(a, np.ndarray) else a for a in a1 + a2]
    k1(*want[:len(a1)])
    k2(*want[len(a1):])
    run_joined([m1, m2], got, n1)
    for i, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, np.ndarray):
            assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"argument {i}")


def test_most_declared_kernels_can_join():
    assert len(MEMBERS) >= 150 and len({n for p in PAIRS for n in p}) >= 0.95 * len(MEMBERS)


def _put(r, out, value):
    out[r] = value[r]


def _scale(r, j, w, x, y):
    y[r, j] = w[r] * x[r, j]


def test_a_later_member_reads_what_lane_0_wrote_after_the_lanes_meet():
    """_put writes the row's weight on lane 0 (a row body without a loop), _scale reads it in every
    lane; lane 0 starts late. The test of the test: without the meeting, lanes 1-3 read the old
    weight."""
    members = [("rows", _put, (0, 1), 0, None), ("cells", _scale, (0, 2, 3), 3, None)]
    x = np.arange(12.0).reshape(2, 6) + 1
    for sync in (True, False):
        w, y = np.zeros(2), np.zeros((2, 6))
        run_joined(members, (w, np.array([2.0, 3.0]), x, y), 2, sync=sync, delay_lane0=0.05)
        ok = np.array_equal(y, np.array([[2.0], [3.0]]) * x)
        assert ok == sync


def _mover(r, a, out):
    r = r + 1
    out[r - 1] = a[r - 1]


def _helper(x):
    return x


def _through(r, a, out):
    row = out[r]
    for j in range(a.shape[1]):
        row[j] = a[0, j]


def _passes(r, a, out):
    out[r] = _helper(a)[r]


def test_access_reads_the_bodies_rows():
    """Written and at the row, per argument: a row body's rows, a parameter read by its column, a
    data row's rows (r // reps), an array passed whole (written, anywhere), a moved row index, a
    row bound to a local and written through it."""
    k = {n: MEMBERS[n][1] for n in ("bernoulli_log_prob", "broadcast_rows_fwd", "repeat_rows")}
    assert fusion.access(k["bernoulli_log_prob"].body, ("r",)) == {
        "logits": (False, True), "x": (False, True), "out_rows": (True, True)}
    assert fusion.access(k["broadcast_rows_fwd"].body, ("r", "j")) == {"p": (False, False), "out": (True, True)}
    assert fusion.access(k["repeat_rows"].body, ("r", "j")) == {"x": (False, False), "out": (True, True)}
    assert fusion.access(_passes, ("r",)) == {"a": (True, False), "out": (True, True)}
    assert fusion.access(_mover, ("r",)) == {"a": (False, False), "out": (True, False)}
    assert fusion.access(_through, ("r",)) == {"a": (False, False), "out": (True, True)}   # written through `row`


def _adds(r, a, sink, k):
    n = 0.0
    for j in range(a.shape[1]):
        n += a[r, j]
    if n != 0.0:
        add_word(sink, k, n)


def _adds_and_reads(r, a, sink, k):
    add_word(sink, k, a[r, 0] + sink[0])


def test_a_word_only_added_to_is_adds_and_adds_share_a_kernel():
    """An array a body only adds to through add_word (a check's count into the sink) is ADDS; one it
    also reads is written past the row. Members that only add to a word join; a member reaching the
    word otherwise (before or after them) does not; ADDS is never `at the row` for other arrays."""
    assert fusion.access(_adds, ("r",)) == {"a": (False, True), "sink": (True, fusion.ADDS)}
    assert fusion.access(_adds_and_reads, ("r",)) == {"a": (False, True), "sink": (True, False)}
    run = fusion.Run()
    run.add({"a": (False, True), "sink": (True, fusion.ADDS)})
    assert run.fits({"b": (False, True), "sink": (True, fusion.ADDS)})   # a second check: joined
    assert not run.fits({"sink": (False, True)})                          # a read of the word after the adds
    assert not run.fits({"a": (True, False)})                             # as before for other arrays
    other = fusion.Run()
    other.add({"sink": (False, False)})
    assert not other.fits({"sink": (True, fusion.ADDS)})                  # adds after a read of the word


def test_a_run_refuses_an_array_written_and_reached_past_its_row():
    def fits(*members):
        run = fusion.Run()
        for m in members[:-1]:
            run.add(m)
        return run.fits(members[-1])
    assert fits({"h": (True, True)}, {"h": (False, True), "v": (True, True)})       # at the row: joined
    assert fits({"p": (False, False)}, {"p": (False, False)})                         # reads only
    assert fits({"h": (True, False)}, {"v": (True, True)})                            # apart
    assert not fits({"h": (True, True)}, {"h": (False, False)})                       # read past the row after
    assert not fits({"h": (False, False)}, {"h": (True, True)})                       # written after a read past
    assert not fits({"h": (True, False)}, {"h": (False, True)})                       # a pair's second row


@pytest.mark.cuda
def test_the_cuda_launch_of_a_run_is_its_members_one_by_one():
    """rows.fused against each member's own launch, rows of the same count (one kernel) and of
    different counts (each member launched as it is): bit for bit, but for the row sums on a device
    (rows narrower than a warp run a row on one lane in the joined kernel, while the sum's own launch
    adds a row over a warp's lanes: another order, the same sum to rounding)."""
    from numba import cuda
    from ppl.kernels.cuda import core, rows
    from ppl.kernels.native import launch as L
    g = np.random.default_rng(0)
    for n_prior in (5, 7):
        logits, noise, p = g.normal(size=(5, 6)), g.uniform(0.02, 0.98, size=(5, 6)), g.normal(size=6)
        spec = (("core.bernoulli_sample", (0, 1, 2)), ("core.broadcast_rows_fwd", (3, 4)),
                ("core.bernoulli_log_prob", (4, 2, 5)))
        outs = {}
        for how in ("joined", "each"):
            d = [cuda.to_device(a) for a in (logits, noise, np.zeros((5, 6)), p, np.zeros((n_prior, 6)), np.zeros(5))]
            if how == "joined":
                rows.fused(spec, *d)
            else:
                core.bernoulli_sample(d[0], d[1], d[2])
                core.broadcast_rows_fwd(d[3], d[4])
                core.bernoulli_log_prob(d[4], d[2], d[5])
            outs[how] = [a.copy_to_host() for a in d]
        for i, (a, b) in enumerate(zip(outs["joined"], outs["each"])):
            if i == 5 and L.LANES > 1:   # the row sums: a row on one lane against a warp's lanes
                np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)
            else:
                assert np.array_equal(a, b)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_noise_fill_joined_writes_the_bits_of_its_own_launch(dtype):
    """Each CUDA noise fill as a joined kernel's member (a Philox call per cell) against its own
    launch (a call per block of columns): the same bits, 7 columns (a last block cut short), a
    row offset, the step a number and a device clock; beside a member over the same rows."""
    from numba import cuda
    from ppl.kernels.cuda import core, noise, rows
    g = np.random.default_rng(2)
    R, D = 3, 7
    xs = {"fill_bernoulli_logit": g.normal(size=(R, D)), "fill_bernoulli_prob": g.random((R, D))}
    p = g.normal(size=D).astype(dtype)
    for step in (5, cuda.to_device(np.array([5, 0, 0], np.int64))):
        for name in ("fill_uniform", "fill_normal", "fill_logistic", "fill_gumbel", *xs):
            extra = (cuda.to_device(xs[name].astype(dtype)),) if name in xs else ()
            own, joined = (cuda.to_device(np.zeros((R, D), dtype)) for _ in range(2))
            getattr(noise, name)(own, *extra, np.uint64(11), 3, step, 2)
            n = 1 + len(extra)
            spec = ((f"noise.{name}", tuple(range(n + 4))), ("core.broadcast_rows_fwd", (n + 4, n + 5)))
            v = cuda.to_device(np.zeros((R, D), dtype))
            rows.fused(spec, joined, *extra, np.uint64(11), 3, step, 2, cuda.to_device(p), v)
            assert np.array_equal(joined.copy_to_host(), own.copy_to_host()), name
            assert np.array_equal(v.copy_to_host(), np.tile(p, (R, 1)))
    acc = fusion.access(noise.fill_bernoulli_logit.__loop__.body, ("r", "j"))   # (seed, stream, step: numbers)
    assert acc["out"] == (True, True) and acc["logits"] == (False, True)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noise_spread_over_a_drawn_rows_configurations_is_the_fill_and_its_spread(dtype):
    """noise.fill_*_spread (every row drawn at row0 + r // S) against the pair it stands for in the
    CUDA step, the fill of the first R / S rows and rows.expand_rows over S: the same bits; its
    own launch and as a joined kernel's member."""
    from numba import cuda
    from ppl.kernels.cuda import noise, rows
    R, D, S = 6, 5, 3
    for step in (9, cuda.to_device(np.array([9, 0, 0], np.int64))):
        for kind in ("uniform", "normal", "logistic", "gumbel"):
            want = cuda.to_device(np.zeros((R, D), dtype))
            getattr(noise, f"fill_{kind}")(want[:R // S], np.uint64(4), 17, step, 1)
            rows.expand_rows(want, S)
            own, member = (cuda.to_device(np.zeros((R, D), dtype)) for _ in range(2))
            getattr(noise, f"fill_{kind}_spread")(own, np.uint64(4), 17, step, 1, S)
            rows.fused(((f"noise.fill_{kind}_spread", (0, 1, 2, 3, 4, 5)), ("rows.zero1", (6,))),
                       member, np.uint64(4), 17, step, 1, S, cuda.to_device(np.ones(R)))
            for got in (own, member):
                assert np.array_equal(got.copy_to_host(), want.copy_to_host()), kind


def test_the_cuda_step_draws_a_drawn_rows_noise_on_every_row_at_once():
    """launches.spread_noise: a fill of a buffer's head and its spread over the same parts are one
    fill_*_spread of the buffer; another buffer's spread, or other parts, are left."""
    import ppl.targets  # noqa: F401
    from ppl.kernels.cuda import noise  # noqa: F401
    from ppl.calls import Buf, Call, Head, KernelRef, StepArg
    from ppl.lowering import ir, launches
    n, m = Buf("n", "R", 4), Buf("m", "R", 4)
    seed, t, row0 = StepArg("seed"), StepArg("t"), StepArg("row0")

    def fill(buf, parts):
        return ir.Stmt(Call(KernelRef("noise", "fill_uniform"), (Head(buf, parts), seed, 3, t, row0)))

    def spread(buf, parts):
        return ir.Stmt(Call(KernelRef("rows", "expand_rows"), (buf, parts)))
    (one,) = launches.spread_noise([fill(n, 2), spread(n, 2)])
    assert str(one) == "noise.fill_uniform_spread(n, seed, 3, t, row0, 2)"
    assert len(launches.spread_noise([fill(n, 2), spread(m, 2)])) == 2
    assert len(launches.spread_noise([fill(n, 2), spread(n, 3)])) == 2


@pytest.mark.cuda
def test_a_joined_kernel_that_does_not_compile_launches_its_members(monkeypatch):
    """Numba's error at the first launch: a warning naming the members and the error, then the
    members one by one (the same result), and no second warning."""
    from numba import cuda
    from numba.core.errors import TypingError
    from ppl.kernels.cuda import core, fused

    def broken(self, dtype):
        raise TypingError("no such overload")
    monkeypatch.setattr(fused.Segment, "kernel", broken)
    spec = (("core.broadcast_rows_fwd", (0, 1)), ("core.bernoulli_log_prob", (1, 2, 3)))
    g = np.random.default_rng(1)
    p, x = g.normal(size=6), (g.random((5, 6)) > 0.5).astype(np.float64)
    want = [cuda.to_device(a) for a in (p, np.zeros((5, 6)), x, np.zeros(5))]
    core.broadcast_rows_fwd(want[0], want[1])
    core.bernoulli_log_prob(want[1], want[2], want[3])
    for k in range(2):
        got = [cuda.to_device(a) for a in (p, np.zeros((5, 6)), x, np.zeros(5))]
        if k == 0:
            with pytest.warns(RuntimeWarning, match=r"broadcast_rows_fwd, core.bernoulli_log_prob one by one.*"
                                                    r"TypingError: no such overload"):
                fused.fused(spec, *got)
        else:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                fused.fused(spec, *got)
        for a, b in zip(got, want):
            assert np.array_equal(a.copy_to_host(), b.copy_to_host())
    fused._SEGMENTS.pop(spec)


def test_printer_joins_what_may_be_joined():
    """lowering/launches.py over statements of real kernels: joined when what one member
    writes the next reads at the row; split where it reads it past the row (broadcast_rows_fwd
    reads p[j]), where a later member writes what an earlier read past the row, where the
    loops' rows differ and the members share an array, and where a member reads by code (a
    slice) what another writes. Over other rows, a member joins as side work where every array
    it shares with the run is only read by both. A member floats up past a product of other
    arrays, not past one that writes its arrays, nor past a check. Two runs with nothing between
    them are one where one kernel takes both."""
    import ppl.targets  # noqa: F401
    from ppl.kernels.cuda import core  # noqa: F401  (registers the CUDA launchers)
    from ppl.calls import Buf, Call, KernelRef, code
    from ppl.lowering import ir, launches

    def st(name, *args):
        return ir.Stmt(Call(KernelRef("core", name), args))

    a, u, h, v, p = (Buf(n, "R", 6) for n in "auhvp")
    d = Buf("d", "D2", 6)
    cases = [([st("broadcast_rows_fwd", p, v), st("bernoulli_sample", v, u, h)], 1),
             ([st("bernoulli_sample", a, u, h), st("broadcast_rows_fwd", h, v)], 2),
             ([st("broadcast_rows_fwd", h, v), st("bernoulli_sample", a, u, h)], 2),
             ([st("broadcast_rows_fwd", p, v), st("bernoulli_sample", v, u, d)], 2),   # other rows, reads v
             ([st("broadcast_rows_fwd", p, v), st("bernoulli_sample", a, u, d)], 1),   # side work
             ([st("broadcast_rows_fwd", p, v), st("broadcast_rows_fwd", p, d)], 1)]   # side work, p read by both
    W, x = Buf("W", 6, 6), Buf("x", "R", 6)
    product = ir.Stmt(Call(KernelRef("core", "affine_acc"), (a, W, x)))   # names none of v, u, h
    check = ir.check(code("{ok}", ok="ok"), "no")
    cases += [([st("broadcast_rows_fwd", p, v), product, st("bernoulli_sample", v, u, h)], 2),   # floats up
              ([st("broadcast_rows_fwd", p, v), ir.Stmt(Call(KernelRef("core", "affine_acc"), (a, W, h))),
                st("bernoulli_sample", v, u, h)], 3),   # the product writes h: not past it
              ([st("broadcast_rows_fwd", p, v), check, st("bernoulli_sample", v, u, h)], 3),   # nor past a check
              ([st("bernoulli_sample", a, u, h),
                st("bernoulli_sample", code("{h}[::-1]", h=h), u, v)], 2)]   # code reaches any row
    for stmts, n in cases:
        out = launches.fused(stmts, 1)
        assert len(out) == n, [str(s) for s in out]
        if len(out) < len(stmts) and stmts[-1].call.args[-1] is d:
            assert str(out[0]) in ("rows.fused((('core.broadcast_rows_fwd', (0, 1)), "
                                   "('core.bernoulli_sample', (2, 3, 4), 'side')), p, v, a, u, d)",
                                   "rows.fused((('core.broadcast_rows_fwd', (0, 1)), "
                                   "('core.broadcast_rows_fwd', (0, 2), 'side')), p, v, d)")
        elif len(out) < len(stmts):
            assert str(out[0]).startswith("rows.fused((('core.broadcast_rows_fwd', (0, 1)), "
                                          "('core.bernoulli_sample', (1, 2, 3))), p, v, u, h)")
    # two runs with nothing between them: one where the later's rows take the earlier's members
    # (a buffer zeroed at the row, one of other rows as side work), not where a side member writes
    # what the other run reads past its row
    zero = [ir.Stmt(Call(KernelRef("rows", "zero2"), (b,))) for b in (d, h)]
    out = launches.fused([*zero, st("bernoulli_sample", a, u, h)], 1)
    assert [str(s) for s in out] == ["rows.fused((('rows.zero2', (0,), 'side'), ('rows.zero2', (1,)), "
                                     "('core.bernoulli_sample', (2, 3, 1))), d, h, a, u)"]
    assert len(launches.fused([*zero, st("bernoulli_sample", code("{d}[:6]", d=d), u, h)], 1)) == 2


def test_inspect_members_cover_every_shape():
    shapes = {d.shape for _, d in MEMBERS.values()}
    assert shapes == set(fusion.SHAPES), shapes
    assert all(list(inspect.signature(d.body).parameters)[len(d.lead):] == list(d.args) for _, d in MEMBERS.values())


@pytest.mark.cuda
@pytest.mark.parametrize("side_len", [300, 2])   # longer than the rows, shorter
@pytest.mark.parametrize("side_last", [False, True])   # its argument before the rows members', after them
def test_side_work_runs_beside_the_rows(side_len, side_last):
    """A joined kernel's side member (a spec entry ("family.name", positions, "side"): lowering/
    launches.py puts the gradient's zeroing there) runs its own loop, a thread per entry of its
    own array, beside the rows' members: the array is zeroed whole whether it is longer or
    shorter than the rows, whether its argument comes before or after the row members' (the
    row's function takes every argument of the kernel), and the row members do what they do alone."""
    from numba import cuda
    from ppl.kernels.cuda import fused
    side, out, other = np.ones(side_len), np.zeros((3, 5)), np.ones((3, 2))
    d = [cuda.to_device(a) for a in (side, out, other)]
    if side_last:
        spec = (("rows.fill2", (0, 1)), ("rows.zero2", (2,)), ("rows.zero1", (3,), "side"))
        fused.fused(spec, d[1], 0.25, d[2], d[0])
    else:
        spec = (("rows.zero1", (0,), "side"), ("rows.fill2", (1, 2)), ("rows.zero2", (3,)))
        fused.fused(spec, d[0], d[1], 0.25, d[2])
    assert not d[0].copy_to_host().any() and not d[2].copy_to_host().any()
    assert (d[1].copy_to_host() == 0.25).all()


def _ones(a):
    """a[i] = 1 for the threads' i: a kernel's body (the simulator swaps this module's `cuda` while it runs)."""
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = 1.0


def test_a_launch_keeps_its_configuration_where_configuring_changes_the_kernel_itself():
    """The CUDA simulator configures a kernel in place (`kernel[grid, block]` returns the kernel):
    a launch kept per (kernel, grid, block) then ran with the configuration set last, e.g. a sum
    over 2 of 4 columns (zeros in a CUDA program's bias gradient after another launch of the same
    kernel on a narrower block). Under the simulator (tests/conftest.py) this checks the real
    thing; a kernel like the simulator's is the test of the test on a device too."""
    from ppl.kernels.native import launch as L

    class InPlace:   # configured as the simulator's FakeCUDAKernel is
        def __getitem__(self, config):
            self.config = config
            return self

        def __call__(self):
            return self.config
    k = InPlace()
    wide = L.configured(k, 1, 4)
    L.configured(k, 1, 2)
    assert L.configured(k, 1, 4)() == (1, 4) and wide is k
    ones = cuda.jit(_ones)
    L.configured(ones, 1, 4)
    L.configured(ones, 1, 2)(cuda.to_device(np.zeros(4)))
    b = cuda.to_device(np.zeros(4))
    L.configured(ones, 1, 4)(b)
    assert b.copy_to_host().tolist() == [1.0, 1.0, 1.0, 1.0]


def test_a_compile_error_is_said_without_terminal_escapes_and_small_grids_without_warnings():
    """On a device Numba's messages carry the terminal's bold (ESC[1m ... ESC[0m): the warning of a
    kernel that did not compile reads plain. numba-cuda warns of every grid under 128 blocks: ppl's
    launches configure their kernels without it (a small batch's grid is small on purpose), once per
    (kernel, grid, block); any other warning still shows."""
    import warnings
    from numba.core.errors import TypingError
    from ppl.kernels.cuda import fused
    from ppl.kernels.native import launch as L
    assert fused._first_line(TypingError("\x1b[1mno such overload\x1b[0m\nmore")) == "TypingError: no such overload"

    class Kernel:
        def __init__(self, message):
            self.message, self.made = message, 0

        def __getitem__(self, config):
            self.made += 1
            warnings.warn(self.message, UserWarning)
            return ("configured", config)
    for bold in ("", "\x1b[1m"):   # as the simulator's and a device's numba-cuda say it
        small = Kernel(f"{bold}Grid size 1 will likely result in GPU under-utilization due to low occupancy.")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            first = L.configured(small, 1, 32)
            assert L.configured(small, 1, 32) is first and small.made == 1
    with pytest.warns(UserWarning, match="something else"):   # the test of the test: other warnings show
        L.configured(Kernel("something else"), 1, 32)
    L._CONFIGURED.clear()
