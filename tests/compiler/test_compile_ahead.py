"""A new step's kernels compiled by two processes (ppl/compiler/ahead.py): the helper's reversed
step calls the same kernels on the same buffers, typing it compiles every kernel the step calls,
the helper runs only where it applies and takes a second program's step into its queue, and a
program compiled with it computes what one compiled alone computes."""
import ast
import os
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

import ppl

from ppl.compiler import ahead as compile_ahead
from ppl.compiler.options import CompileOptions
from ppl.compiler.pipeline import Compilation, reversed_source, run_passes
from ppl.models import gaussian_vae, sbn


def _calls(source, fn):
    tree = ast.parse(source)
    f = next(s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == fn)
    return Counter(ast.unparse(n) for st in f.body for n in ast.walk(st) if isinstance(n, ast.Call))


def _reversed(model, **options) -> tuple:
    """(the step's module source, the compile helper's reversed step) as the compiler prints them."""
    c = run_passes(Compilation(model, CompileOptions(**options)))
    return c.source, reversed_source(c)


@pytest.mark.parametrize("build", [sbn.build, gaussian_vae.build])
def test_the_reversed_step_calls_the_same_kernels_in_reverse(build):
    src, rev = _reversed(build())
    assert rev is not None
    assert _calls(rev, "step") == _calls(src, "step")
    body = [ast.unparse(s) for s in next(s for s in ast.parse(rev).body if isinstance(s, ast.FunctionDef)).body]
    fwd = [ast.unparse(s) for s in next(s for s in ast.parse(src).body if isinstance(s, ast.FunctionDef)
                                        and s.name == "step").body]
    first, last = fwd.index(next(s for s in fwd if s.startswith("rows.fill(rw_"))), len(fwd) - 1
    assert body.index(fwd[first]) > body.index(fwd[last - 1])   # the backward pass's last call comes first


def test_a_check_moves_whole_and_the_step_with_a_loop_or_row_code_has_no_helper():
    """A parameter check (`if not <test>:` and its raise: one ir.If) keeps its raise under its
    test in the reversed step; a step with a loop block (ppl.scan) or the row-fused step has none."""
    from ppl.models import toy_bernoulli
    _, rev = _reversed(gaussian_vae.build())
    lines = rev.splitlines()
    opened = [i for i, line in enumerate(lines) if line.startswith("    if not ")]
    assert opened and all(lines[i + 1].startswith("        raise ModelError_(") for i in opened)
    assert _reversed(toy_bernoulli.build())[1] is None
    with ppl.Model("ahead_scan") as m:
        x = m.input("x", 2)
        last, _ = ppl.scan(lambda c, _: (ppl.tanh(ppl.Affine(c, 2, name="a")), None), x, length=3)
        m.cost("f", ppl.total(last * last))
    src, rev = _reversed(m, lowering="arrays")
    assert "for it_ in range(3)" in src and rev is None


def test_jobs_setting(monkeypatch):
    monkeypatch.setenv("PPL_COMPILE_JOBS", "1")
    assert compile_ahead.jobs() == 1
    monkeypatch.setenv("PPL_COMPILE_JOBS", "2")
    assert compile_ahead.jobs() == 2
    monkeypatch.setenv("PPL_COMPILE_JOBS", "two")
    with pytest.raises(ValueError, match="PPL_COMPILE_JOBS"):
        compile_ahead.jobs()
    monkeypatch.setenv("PPL_COMPILE_JOBS", "auto")
    assert compile_ahead.jobs() in (1, 2)
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) == 2:
        monkeypatch.setattr(compile_ahead, "others_running", lambda: 0)
        assert compile_ahead.jobs() == 2
        monkeypatch.setattr(compile_ahead, "others_running", lambda: 1)   # the other core is taken
        assert compile_ahead.jobs() == 1


def test_others_running_reads_the_runnable_count(tmp_path):
    """The count of runnable tasks in /proc/loadavg's fourth field, this process taken off."""
    f = tmp_path / "loadavg"
    f.write_text("1.93 1.20 0.80 3/412 9876\n")
    assert compile_ahead.others_running(reads=3, gap=0.0, path=str(f)) == 2
    f.write_text("garbled\n")
    assert compile_ahead.others_running(reads=1, path=str(f)) is None
    assert compile_ahead.others_running(reads=1, path=str(tmp_path / "none")) is None


def test_a_closed_queue_takes_no_job_and_its_helper_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(compile_ahead, "LINGER", 0.0)
    queue = tmp_path / "ppl_ahead_1_0"
    queue.mkdir()
    compile_ahead.main(str(queue))   # an empty queue: closed (renamed), then removed
    assert list(tmp_path.iterdir()) == []
    assert compile_ahead._put(queue, {"name": "x"}) is False   # the program's process then starts another


@pytest.mark.parametrize("linger", [2.0, 0.0])
def test_a_job_queued_while_the_helper_waits_is_taken_by_it(tmp_path, monkeypatch, linger):
    """A helper whose queue is empty waits LINGER seconds before it closes the queue: a job the
    program's process queues meanwhile (the measured choice's steps, a moment after a first step)
    is taken by that helper; with no wait the queue is closed and the job refused (the program's
    process would start another helper)."""
    import threading
    import numba
    from ppl.kernels.cpu import rows
    monkeypatch.setattr(compile_ahead, "LINGER", linger)
    queue = tmp_path / "ppl_ahead_1_0"
    queue.mkdir()
    helper = threading.Thread(target=compile_ahead.main, args=(str(queue),))
    helper.start()
    time.sleep(0.3)
    sig = (numba.typeof(np.zeros(6, np.float64 if linger else np.float32)[::2]),)   # compiled nowhere else
    taken = compile_ahead._put(queue, {"functions": [(rows.__name__, rows.__file__, "zero1", sig)]})
    helper.join()
    assert taken == (linger > 0) and (sig in rows.zero1.overloads) == (linger > 0)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_job_leaves_the_rest_of_the_queue_to_run(tmp_path, monkeypatch):
    """A job that cannot be done (here a module that does not exist) is left to the program's
    process; the helper goes on with the next job and removes its folder."""
    monkeypatch.setattr(compile_ahead, "LINGER", 0.0)
    import numba
    from ppl.kernels.cpu import rows
    queue = tmp_path / "ppl_ahead_1_0"
    queue.mkdir()
    sig = (numba.typeof(np.zeros(3, np.float64)),)
    assert compile_ahead._put(queue, {"functions": [("no_such_module", None, "f", sig)]})
    assert compile_ahead._put(queue, {"functions": [(rows.__name__, rows.__file__, "zero1", sig)]})
    compile_ahead.main(str(queue))
    assert sig in rows.zero1.overloads
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("hooked", [True, False])
def test_the_first_steps_needs_are_taken_while_a_step_is_typed(tmp_path, monkeypatch, hooked):
    """A job queued at rank 1 (what the program's process needs at its first step, the optimiser's
    update: `functions(first=True)`) is taken while the helper types a step, at the step's first
    kernel, not after the whole step: the program's process, which compiles the step's kernels
    from the other end, then loads it. The test of the test: without the hook it is still queued."""
    import uuid

    import numba
    from ppl.kernels.cpu import rows
    if not hooked:
        monkeypatch.setattr(compile_ahead, "_first_needs", lambda folder: lambda: None)
    queue = tmp_path / "ppl_ahead_1_0"
    queue.mkdir()
    sig = (numba.typeof(np.zeros((2, 3), np.float32)),)
    src = "import ppl.kernels.cpu.rows as rows\n\n\ndef step(a):\n    rows.zero1(a)\n"
    assert compile_ahead._put(queue, {"name": f"ppl_test_step_{uuid.uuid4().hex}", "source": src, "signature": sig}, 0)
    assert compile_ahead._put(queue, {"functions": [(rows.__name__, rows.__file__, "zero1", sig)]}, 1)
    step_job, = queue.glob("0*.job")
    compile_ahead._run(step_job)   # the step job alone
    assert [p.name[0] for p in queue.glob("*.job")] == ([] if hooked else ["1"])
    from ppl.kernels import _link
    assert not _link.before_outer_compile   # removed with the step job


class _Helper:   # a helper process, not started
    def __init__(self, *args, **kwargs):
        pass

    def poll(self):
        return None

    def terminate(self):
        pass

    def wait(self, timeout=None):
        return 0


def _no_helper_process(monkeypatch):
    """ahead's state fresh, helpers launched as _Helper, a new step never in the disk cache."""
    from ppl.kernels import numba_compat
    for name, value in (("_queue", None), ("_helpers", []), ("_folders", []), ("_expected", []), ("_then", [])):
        monkeypatch.setattr(compile_ahead, name, value)
    from types import SimpleNamespace   # ahead's subprocess module alone: no other caller's Popen changes
    monkeypatch.setattr(compile_ahead, "subprocess", SimpleNamespace(
        Popen=_Helper, DEVNULL=subprocess.DEVNULL, TimeoutExpired=subprocess.TimeoutExpired))
    monkeypatch.setattr(compile_ahead, "jobs", lambda: 2)
    monkeypatch.setattr(numba_compat, "is_cached", lambda *a: False)
    monkeypatch.setattr(compile_ahead, "_rows_cached", lambda *a: False)


@pytest.mark.parametrize("declared", [False, True])
def test_a_first_run_of_a_version_starts_the_helper_at_import(tmp_path, monkeypatch, declared):
    """`import ppl` where the cache folder holds none of this version's generated kernels launches
    the helper at once with an empty queue (prestart); the first new step's job then goes to it at
    rank 0, the next programs' at rank 2. The test of the test: where the version's kernels were
    declared before (a warm cache), nothing starts at import."""
    from ppl.kernels import _cache
    _no_helper_process(monkeypatch)
    monkeypatch.setattr(_cache, "declared_before", lambda: declared)
    monkeypatch.setattr(_cache, "cache_root", lambda: tmp_path)
    compile_ahead.prestart()
    assert compile_ahead.running() is not declared
    if declared:
        return
    assert list(compile_ahead._queue[1].glob("*.job")) == []
    prog = sbn.build().compile(policy="rules")   # its new step's job (compile_program calls start)
    compile_ahead.start(prog, tmp_path, lambda: "a second program's")
    assert sorted(p.name[0] for p in compile_ahead._queue[1].glob("*.job")) == ["0", "2"]


@pytest.mark.parametrize("expected", [True, False])
def test_a_runs_first_needs_expected_before_its_compile_are_queued_when_the_helper_launches(
        tmp_path, monkeypatch, expected):
    """`expect(calls)` (`ppl train`: the optimiser's update and the loss record) queues calls(prog)
    at rank 1 on the helper the program's new step launches, once: the helper compiles them while
    the program's process compiles the measured choice's programs, not after. The test of the
    test: without expect, the launch queues the step alone."""
    from ppl.kernels.cpu import rows
    _no_helper_process(monkeypatch)
    if expected:
        compile_ahead.expect(lambda prog: [(rows.zero1, (prog.theta[:3],))])
    prog = sbn.build().compile(policy="rules")
    compile_ahead.start(prog, tmp_path, lambda: "the step's reversed source")
    compile_ahead.start(prog, tmp_path, lambda: "a second program's")
    queue = compile_ahead._queue[1]
    jobs = {p.name[0] for p in queue.glob("*.job")}
    assert jobs == ({"0", "1", "2"} if expected else {"0", "2"}), jobs   # the step, its first needs, the next step
    if expected:
        import pickle
        (first,) = queue.glob("1*.job")
        assert [f[2] for f in pickle.loads(first.read_bytes())["functions"]] == ["zero1"]


def test_a_hook_given_then_runs_once_right_after_the_next_step_is_queued(tmp_path, monkeypatch):
    """`then(fn)` calls fn once, right after the next step's job is queued on the helper;
    `then(None)` forgets one not called yet. The test of the test: a hook given again runs after the
    next step's job, not before, and one forgotten never runs."""
    _no_helper_process(monkeypatch)
    seen = []

    def queued():
        seen.append(sorted(p.name[0] for p in compile_ahead._queue[1].glob("*.job")))
    prog = sbn.build().compile(policy="rules")   # its step queued (rank 0)
    compile_ahead.then(queued)
    compile_ahead.start(prog, tmp_path, lambda: "a first program's")
    compile_ahead.then(queued)
    compile_ahead.start(prog, tmp_path, lambda: "a second program's")
    compile_ahead.then(queued)
    compile_ahead.then(None)
    compile_ahead.start(prog, tmp_path, lambda: "a third program's")
    assert seen == [["0", "2"], ["0", "2", "2"]], seen


@pytest.mark.parametrize("evaluation", [True, False])
def test_ppl_trains_evaluation_queues_behind_the_measured_choices_step(monkeypatch, evaluation):
    """`compile_run(evaluation=True)` (`ppl train`) prepares the evaluation program when the measured
    choice's first step is handed to the helper: its jobs (its reversed step, its `step_rows` entry)
    queue right behind that step's, before the chosen program's, so the helper compiles them while
    it would wait. The test of the test: without it, the first job behind the measured step is the
    chosen program's step."""
    import pickle

    from ppl.training.runs import compile_run
    _no_helper_process(monkeypatch)
    x = (np.random.default_rng(0).random((16, 64)) > 0.5).astype(np.float32)
    D = {"policy": "measured", "dtype": "float32", "samples": 1, "objective": "elbo", "steps": 100}
    prog = compile_run(sbn.build(), D, 0, "auto", pilot={"x": x}, evaluation=evaluation)
    ev = prog.prepare_evaluation()   # as `ppl train` does without compile_run's: the program built once, queued once
    jobs = [pickle.loads(p.read_bytes()) for p in sorted(compile_ahead._queue[1].glob("*.job"))]
    names = [j["name"] if "source" in j else [f[2] for f in j["functions"]] for j in jobs]
    measured, chosen, mine = (p.module.__name__ + "_ahead" for p in (prog.measurement.prog, prog, ev))
    assert len(names) == 4 and names[0].startswith(measured), names
    at = 1 if evaluation else 2   # the evaluation's step and entry: behind the measured step, or behind the choice's
    assert names[at].startswith(mine) and names[at + 1] == ["step_rows"], names
    assert names[3 if evaluation else 1].startswith(chosen), names


def test_fit_queues_its_first_needs_before_the_measured_choice(monkeypatch):
    """fit queues the optimiser's update and the loss record on a running helper before it makes a
    pending measured choice (whose programs the program's process compiles meanwhile), not only
    when its steps start. The test of the test: the choice is recorded after the first queue."""
    order = []
    monkeypatch.setattr(compile_ahead, "start", lambda *args: None)   # no helper process
    monkeypatch.setattr(compile_ahead, "running", lambda: True)
    monkeypatch.setattr(compile_ahead, "functions",
                        lambda calls, first=False: order.append([c[0].py_func.__name__ for c in calls]) or True)
    prog = sbn.build().compile(policy="measured")   # pending: made on fit's first batch
    assert prog.measure_pending
    real = prog.choose
    monkeypatch.setattr(prog, "choose", lambda *args, **kw: order.append("choice") or real(*args, **kw))
    x = (np.random.default_rng(0).random((16, 64)) < 0.3).astype(np.float32)
    ppl.fit(prog, {"x": x}, ppl.optim.Adam(1e-3), steps=2, batch_size=8, progress=False)
    assert order[1] == "choice" and {"adam_update", "record_losses"} <= set(order[0]), order


def test_a_step_nobody_may_run_is_handed_to_the_helper_only_when_it_runs(monkeypatch):
    """The rule table's program of a measured choice made on the first batch is handed to the
    helper when its step first runs (a first `grad`), not when it is compiled: fit makes the choice
    first and never runs it. A program compiled without a pending choice is handed at once. The
    test of the test: with every program handed at compile (pipeline's `ahead` ignored), the
    first assertion fails."""
    started = []
    monkeypatch.setattr(compile_ahead, "start", lambda prog, *args: started.append(prog) or None)
    x = (np.random.default_rng(0).random((8, 64)) < 0.3).astype(np.float32)
    pending = sbn.build().compile(policy="measured")
    assert pending.measure_pending and started == []
    pending.grad({"x": x})   # the rule table's step runs now (the choice is measured on a thread)
    pending.join_compile()
    assert started[0] is not None and len(started) >= 1
    n = len(started)
    sbn.build().compile(policy="rules")
    assert len(started) == n + 1


# the names of the functions Numba compiles from here on, in `compiled` (the scripts below)
SEEN = """
from numba.core import event
compiled = []
class Seen(event.Listener):
    def on_start(self, e):
        compiled.append(e.data["dispatcher"].py_func.__name__)
    def on_end(self, e):
        pass
event.register("numba:compile", Seen())
"""

TYPES = """
import numpy as np
from ppl.compiler import ahead as compile_ahead
from ppl.kernels import numba_compat
from ppl.models import sbn
from ppl.compiler.options import CompileOptions
from ppl.compiler.pipeline import Compilation, reversed_source, run_passes
prog = sbn.build().compile()
path = PATH
with open(path, "w") as f:
    f.write(reversed_source(run_passes(Compilation(sbn.build(), CompileOptions()))))
mod = compile_ahead.load_module("reversed_sbn", path)
numba_compat.types_only(mod.step, compile_ahead.signature(prog))
""" + SEEN + """
prog.grad({"x": np.zeros((8, 64), np.float32)}, seed=0)
print(compiled)
"""


@pytest.mark.slow
def test_typing_the_reversed_step_compiles_every_kernel_the_step_calls(tmp_path):
    """After the helper's work (numba_compat.types_only, here in the program's process), the
    step's first call compiles the step alone: every kernel it calls was compiled."""
    env = {**os.environ, "PPL_CACHE_DIR": str(tmp_path / "cache"), "PPL_COMPILE_JOBS": "1",
           "PPL_FIRST_STEPS": "0"}   # the first call compiles the step (not interpreted first: runtime/first_steps.py)
    out = subprocess.run([sys.executable, "-c", TYPES.replace("PATH", repr(str(tmp_path / "reversed_sbn.py")))],
                         env=env, check=True, timeout=600, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "['step']"


SCRIPT = """
import numpy as np, subprocess, ppl
from ppl.compiler import ahead as compile_ahead
from ppl.models import sbn
prog = sbn.build().compile()
prog.prepare_evaluation(samples=10)   # queued on the same helper
helpers = list(compile_ahead._helpers)
x = (np.random.default_rng(0).random((8, 64)) > 0.5).astype(np.float32)
loss, g = prog.grad({"x": x}, seed=3)
rc = [h.wait(timeout=300) for h in helpers]
""" + SEEN + """
prog.evaluate({"x": x}, samples=10)
np.save(OUT, np.concatenate([[loss, len(helpers), len(compiled), *rc], prog.grad_buffer]))
"""


@pytest.mark.slow
def test_a_step_compiled_with_the_helper_computes_the_same(tmp_path):
    """Oracle: the same program compiled in one process (no helper), gradient bit for bit."""
    out = tmp_path / "with.npy"
    env = {**os.environ, "PPL_CACHE_DIR": str(tmp_path / "cache"), "PPL_COMPILE_JOBS": "2"}
    subprocess.run([sys.executable, "-c", SCRIPT.replace("OUT", repr(str(out)))], env=env, check=True, timeout=600)
    got = np.load(out)
    assert got[1] == 1 and got[3] == 0, "one helper ran, and exited cleanly"
    assert got[2] == 0, "the evaluation's kernels and step were compiled by the helper"
    assert not list((tmp_path / "cache").glob("*_ahead_*")), "the helper removed its files"
    prog = sbn.build().compile()
    x = (np.random.default_rng(0).random((8, 64)) > 0.5).astype(np.float32)
    loss, _ = prog.grad({"x": x}, seed=3)
    assert got[0] == loss
    np.testing.assert_array_equal(got[4:], prog.grad_buffer)


def test_an_evaluation_whose_block_entry_is_cached_starts_no_helper(monkeypatch):
    """The evaluation runs `step_rows`, never its `step`: once `step_rows` is in the disk cache
    (its kernels too), compiling that program again (a later `ppl train`) launches no helper,
    though its `step` was never compiled. The first compile, with nothing cached, launches one."""
    from ppl.language import declare
    launched = []
    monkeypatch.setenv("PPL_COMPILE_JOBS", "2")
    monkeypatch.setattr(compile_ahead, "_launch", lambda folder, job: launched.append(job["name"]))
    m = sbn.build(latent=(3,), hidden=4, pixels=8)
    m.name = f"ahead_eval_{os.getpid()}_{np.random.default_rng().integers(1 << 40)}"   # a new step source

    def evaluator():
        return declare.compile_hard(declare.evaluation(m), samples=3, dtype=np.float64, objective="elbo")

    ev = evaluator()
    assert len(launched) == 1, "nothing cached: the helper applies"
    x = (np.random.default_rng(0).random((4, 8)) > 0.5).astype(np.float64)
    ev.module.step_rows(*declare.evaluation_args(ev, {"x": x}, 0, 0))   # compiled and cached here
    evaluator()
    assert len(launched) == 1, "step_rows cached: no helper for a step nobody runs"


@pytest.mark.parametrize("make", [lambda: ppl.optim.SGD(0.1, t0=10.0), lambda: ppl.optim.Momentum(0.1, mu=0.9),
                                  lambda: ppl.optim.Adam(0.01)], ids=["sgd", "momentum", "adam"])
def test_an_optimisers_recorded_kernel_calls_are_its_update(make):
    """What fit queues for the helper (Optimizer.kernel_calls) is what update() calls: made by
    hand (the step size by its own recorded call, not called while recording), the recorded calls
    give update()'s parameters bit for bit; History's likewise has the signature append() compiles."""
    rng = np.random.default_rng(0)
    theta, grad = rng.normal(size=50).astype(np.float32), rng.normal(size=50).astype(np.float32)
    from ppl.training.optim import RATE, scheduled_rate
    a, b = make(), make()
    for _ in range(3):
        ta, tb = theta.copy(), theta.copy()
        calls = a.kernel_calls(ta, grad)
        assert calls[0][0] is scheduled_rate   # recorded, not called (a new process would compile it)
        for kernel, args in calls:
            if kernel is scheduled_rate:   # the step size: its own call, its result where RATE stands
                rate = kernel(*args)
                continue
            kernel(*[rate if x is RATE else x for x in args])
        a.t += 1
        b.update(tb, grad)
        np.testing.assert_array_equal(ta, tb)
        theta = ta
    class Mine(type(a)):   # an update written outside ppl is not recorded: it may compute in Python
        def _apply(self, K, theta, grad):
            theta -= 0.1 * grad
    before = theta.copy()
    assert Mine.__new__(Mine).kernel_calls(theta, grad) == [] and np.array_equal(theta, before)
    import numba
    from ppl.training.history import History
    h = History()
    kernel, args = h.kernel_call()
    h.append([1.0, 2.0])
    assert tuple(numba.typeof(v) for v in args) in kernel.overloads
