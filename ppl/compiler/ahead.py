"""A new step's kernels compiled on two cores: the program's process from the first kernel call
of the step on, a helper process from the last one back.

Nearly all of a new graph's first step, on a machine whose disk cache does not hold the kernels
yet, is compiling ppl's kernels (docs/benchmarks/compile-and-cold-start.md, "Cold start"); the
step itself is typed in its statements' order, so its kernels compile one after another on one
core. When a core is free, `start(prog, ...)` hands a Python process (`main`) the same step with
its kernel calls in reverse order, as the compiler printed it (printer.print_reversed; the
order does not change a call's argument types: every buffer comes from the step's arguments). The helper only types that step (`numba_compat.types_only`):
Numba compiles each kernel a call reaches while it types the call, and the step's own code,
which nobody runs, is never made.
Both processes fill the same locked disk cache (kernels/_cache.py): a kernel the other process
is compiling is waited for and then loaded, so the two meet halfway and each kernel is compiled
once.

One helper serves a process: the steps of programs compiled while it runs (the evaluation
program `ppl train` prepares beside the training one, `Program.prepare_evaluation`) join its
queue, a folder of job files it takes in order; it exits when the queue has stayed empty for a
moment (`LINGER`: the next programs' steps come soon after a first step), having closed the
folder (renamed it) so that no job is left behind unseen, and is ended when the program's
process exits. What the program's process needs at its first step (fit's optimiser update and
loss record, `functions(first=True)`) is taken while a step is being typed, before its next
kernel, not after the step: the program's process reaches those right after the step's kernels.
fit queues them before it makes a pending measured choice, and `ppl train`, which measures while
it compiles, names them ahead (`expect`): the helper compiles them while the choice's programs
compile. `ppl train` prepares its evaluation program when the measured choice's step reaches
the helper (`then`), so that its jobs come right behind that step's: the helper compiles them
while the program's process measures, not after the run's steps. The measured choice's programs
of their own, timed against the choice's, have their steps compiled here while the choice's
compiles there (compiler/alone.py).
It writes nothing but the kernels' cache files and removes its own.

It applies to CPU steps made only of kernel calls (the array lowering), only when neither the
step nor its block entry `step_rows` (what the evaluation runs) is in the disk cache yet, and only
when a core is idle: `PPL_COMPILE_JOBS` (default "auto":
two when no other task is runnable on a core the helper could take) sets it; 1 turns it off.
On a first run of this version of ppl (the cache folder holds none of its generated kernels),
`import ppl` starts the helper at once (`prestart`): its own import runs beside the rest of the
program's and the first new step's job finds it waiting.
"""
from __future__ import annotations

import atexit
import itertools
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ENV = "PPL_COMPILE_JOBS"
_helpers = []   # helper processes started by this process, ended at exit
_queue = None   # (the running helper, its queue folder, [True] while one started ahead awaits a first step), or None
_folders = []   # the queue folders of those helpers
_numbers = itertools.count()   # job files (in the order queued) and queue folders
_expected = []   # expect(calls): a training run's first needs, queued on the next helper launched
_then = []   # then(fn): called once the next step is queued on a helper
JOB, CLOSED = ".job", ".closed"   # a queued job's suffix; a queue folder's once its helper takes no more
# how long a helper with an empty queue waits for another job before it closes the queue: the
# program's process queues the next programs' steps (the measured choice's, the evaluation's) a
# moment after its first step; a helper still there takes them without a new process's start
LINGER = 3.0
# how long a helper waits for its first job: one started ahead at `import ppl` (prestart) waits for
# the program's first new step, after the user's model is declared and compiled
FIRST_WAIT = 20.0


def jobs() -> int:
    """How many processes compile a new step: `PPL_COMPILE_JOBS`, or by default 2 when this
    machine has a core to spare (no task runnable now besides this process on a 2-core machine:
    `others_running`), else 1."""
    value = os.environ.get(ENV, "auto").strip().lower()
    if value != "auto":
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"{ENV} must be 'auto' or a number of processes, got {value!r}") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2:
        return 1
    others = others_running()
    if others is None:
        try:   # the 1-minute load average, this process included: it lags a process that just ended
            others = os.getloadavg()[0] - 1
        except OSError:   # pragma: no cover - no load average on this system
            return 1
    return 2 if others <= cores - 2 else 1


def others_running(reads: int = 3, gap: float = 0.005, path: str = "/proc/loadavg") -> float | None:
    """Tasks runnable now besides this process: the median over `reads` reads, `gap` seconds
    apart, of the running count in Linux's /proc/loadavg (its fourth field, "running/total",
    which counts this process); None where that file cannot be read."""
    counts = []
    for i in range(reads):
        try:
            with open(path) as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return None
        counts.append(running - 1)
        if i + 1 < reads:
            time.sleep(gap)
    return statistics.median(counts)


def signature(prog) -> tuple:
    """The argument types of a gradient call of prog's step (what its first call compiles)."""
    import numba
    import numpy as np
    ws2, ws1 = prog.workspace(1)
    inputs = tuple(np.zeros((1, prog.model.nodes[n].width if n in prog.model.nodes else 1), prog.dtype)
                   for n in prog.layout.inputs)
    values = (prog.theta, prog.grad_buffer, prog.state, ws2, ws1, inputs, 1, np.uint64(0), np.int64(0), 1)
    return tuple(numba.typeof(v) for v in values)


def start(prog, folder, reversed_step) -> subprocess.Popen | None:
    """Queue prog's reversed step (`reversed_step()`: the module the compiler prints with the
    step's statements in reverse order, compiler.pipeline.reversed_source; None where it does
    not apply) on this process's helper, launching one when none runs (when it applies: see the
    module's docstring); the helper, or None."""
    from ..kernels import numba_compat
    alive = running()
    if prog.target != "cpu" or (not alive and jobs() < 2):
        return None
    sig = signature(prog)
    if numba_compat.is_cached(prog.entry, sig) or _rows_cached(prog, sig):
        return None
    src = reversed_step()
    if src is None:
        return None
    job = {"name": f"{prog.module.__name__}_ahead_{os.getpid()}", "source": src, "signature": sig}
    if alive and _put(_queue[1], job, 0 if _queue[2] else 2):   # a running helper takes it, however busy the machine
        proc = _queue[0]
        _queue[2].clear()   # a helper started ahead: its first step queued
    elif not alive or jobs() >= 2:   # no helper ran (jobs() said 2 above), or it closed its queue meanwhile (ask again)
        proc = _launch(folder, job)
    else:
        return None
    while _expected:   # what a run of this program will need first, taken in the helper's idle time
        functions(_expected.pop()(prog), first=True)
    while _then:   # what the run needs after its steps, queued behind this step
        _then.pop()()
    return proc


def expect(calls) -> None:
    """`calls(prog)`: the (jitted function, arguments) calls a training run of the program compiled
    next needs at its first step (the optimiser's update, the loss record: fit's
    functions(first=True)), queued on the helper that program's new step launches, at once: it
    compiles them while the program's process is still compiling (the measured choice's programs,
    which `ppl train` measures before its run starts) instead of after. Once."""
    _expected[:] = [calls]


def then(fn) -> None:
    """fn(): called once, right after the next step is queued on a helper (`compile_run`: the
    report's evaluation program, prepared there, so that its jobs queue behind the measured
    choice's step and the helper compiles them in the time it waits for the chosen program's
    step, instead of after the run's steps). None: forget one not called yet."""
    _then[:] = [] if fn is None else [fn]


def _rows_cached(prog, sig) -> bool:
    """Whether the program's `step_rows` entry (what the evaluation runs, its `step` never: its
    block calls, declare.evaluation_args) is in the disk cache for a call with this step's
    arguments and a row offset: its kernels are then cached too."""
    import numba
    import numpy as np

    from ..kernels import numba_compat
    rows = getattr(prog.module, "step_rows", None)
    return rows is not None and numba_compat.is_cached(rows, (*sig, numba.typeof(np.int64(0))))


def running() -> bool:
    """Whether this process's helper runs (and may take more jobs)."""
    return _queue is not None and _queue[0].poll() is None


def functions(calls, first: bool = False) -> bool:
    """Queue on the running helper, if one runs, the compile of each (jitted function, arguments)
    in `calls` for those arguments' types: module-level functions of ppl.kernels, or the entry
    points of a generated module (imported from its file by the helper); first=True: what the
    program's process needs at its first step, taken right after the step that launched the
    helper. Whether it was queued."""
    if not running():
        return False
    import numba
    items = []
    for disp, args in calls:
        mod = sys.modules.get(disp.py_func.__module__)
        if getattr(mod, disp.py_func.__name__, None) is not disp:
            continue   # not reachable by its name: compiled where it is first called
        items.append((mod.__name__, getattr(mod, "__file__", None), disp.py_func.__name__,
                      tuple(numba.typeof(a) for a in args)))
    return _put(_queue[1], {"functions": items}, 1 if first else 2)


def prestart() -> None:
    """At `import ppl`, where the cache folder holds none of this version's kernels (a first run
    after an install or an upgrade: kernels/declare.py's table of generated kernels is not there
    yet) and the helper applies (`jobs()`): launch it now with an empty queue. Its import then
    runs beside the program's own and the model's compile, and the first new step finds it
    waiting (FIRST_WAIT) instead of starting it; its job goes first (rank 0)."""
    from ..kernels import _cache
    if running() or _cache.declared_before() or jobs() < 2:
        return
    try:
        folder = _cache.cache_root()
        folder.mkdir(parents=True, exist_ok=True)
        _launch(folder, None, FIRST_WAIT)
    except (OSError, RuntimeError):   # no cache folder to hold a queue: a helper starts at the first step
        return
    _queue[2].append(True)   # started ahead: the first step's job is rank 0


def _launch(folder, job, wait=None) -> subprocess.Popen:
    global _queue
    queue = Path(folder) / f"ppl_ahead_{os.getpid()}_{next(_numbers)}"
    queue.mkdir()
    _folders.append(queue)
    if job is not None:
        _put(queue, job, 0)
    env = {**os.environ, ENV: "1"}
    # at a lower priority: where it competes for a core, the program's process (which runs the
    # step) goes first
    code = (f"import os; os.nice(5) if hasattr(os, 'nice') else None; from ppl.compiler.ahead import main; "
            f"main({str(queue)!r}, {wait!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not _helpers:
        atexit.register(_end_helpers)
    _helpers.append(proc)
    _queue = (proc, queue, [])   # the helper, its queue folder, [True] while it waits for a first step
    return proc


def _put(queue: Path, job: dict, rank: int = 2) -> bool:
    """Add `job` to the queue folder; False when its helper has closed the folder. The helper
    takes the lowest name: by `rank` (0: the step that launched it, 1: what the program needs at
    its first step, 2: the rest), then in the order queued."""
    n = f"{rank}{next(_numbers):06d}"
    try:
        tmp = queue / f"{n}.tmp"
        tmp.write_bytes(pickle.dumps(job))
        os.replace(tmp, queue / f"{n}{JOB}")
    except OSError:
        return False
    return True


def _end_helpers():
    for proc in _helpers:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:   # pragma: no cover
                proc.kill()
    for queue in _folders:   # what a helper ended early left
        for path in (queue, queue.with_name(queue.name + CLOSED)):
            shutil.rmtree(path, ignore_errors=True)


def main(queue: str, wait=None) -> None:
    """The helper: take the queued jobs in turn, each a reversed step to type or functions to
    compile (into the disk cache); when the queue has stayed empty for LINGER seconds, close it
    (rename it: the program's process queues no more there), take what came in before that, and
    remove it. A job that fails is left to the program's process, which compiles it and reports
    the error. (Importing this module imported ppl, which installed its cache locator and locks.)"""
    folder = Path(queue)
    closed = folder.with_name(folder.name + CLOSED)
    idle = None   # when the queue was first found empty
    wait = LINGER if wait is None else wait   # before its first job (prestart's: FIRST_WAIT); LINGER after each
    try:
        while True:
            jobs = sorted(folder.glob(f"*{JOB}"))
            if jobs:
                _run(jobs[0])
                idle, wait = None, LINGER
                continue
            idle = time.monotonic() if idle is None else idle
            if time.monotonic() - idle < wait:
                time.sleep(0.02)
                continue
            os.rename(folder, closed)
            for path in sorted(closed.glob(f"*{JOB}")):
                _run(path)
            return
    finally:
        shutil.rmtree(closed, ignore_errors=True)


def _run(path: Path) -> None:
    job = pickle.loads(path.read_bytes())
    path.unlink()
    try:
        _compile(path.parent, job)
    except Exception:   # noqa: BLE001 - the program's process compiles it and reports why
        pass


def _compile(folder: Path, job: dict) -> None:
    import importlib

    from ..kernels import numba_compat
    for modname, file, name, sig in job.get("functions", ()):
        mod = sys.modules.get(modname)
        if mod is None and modname.startswith("ppl_gen_"):   # a generated module, as pipeline.load_source loads it
            mod = load_module(modname, file)
        elif mod is None:
            mod = importlib.import_module(modname)
        getattr(mod, name).compile(sig)
    if "source" not in job:
        return
    src = folder / f"{job['name']}.py"
    src.write_text(job["source"])
    from ..kernels import _link
    hook = _first_needs(folder)
    _link.before_outer_compile.append(hook)
    try:
        numba_compat.types_only(load_module(job["name"], src).step, job["signature"])
    finally:
        _link.before_outer_compile.remove(hook)
        src.unlink()


def _first_needs(folder: Path):
    """While the helper types a step, before each kernel it compiles: take the jobs queued at rank 1
    (what the program's process needs at its first step, `functions(first=True)`: the optimiser's
    update, the loss record) first. The program's process compiles the step's kernels from the
    other end and then needs those at once; done here meanwhile, it loads them instead."""
    busy = []

    def take():
        if busy:
            return
        busy.append(True)
        try:
            for path in sorted(folder.glob(f"1*{JOB}")):
                _run(path)
        finally:
            busy.clear()
    return take


def load_module(name: str, path, extra_globals=None):
    """Import the module file `path` as `name`, registered in sys.modules (Numba's disk cache
    loads only for importable modules), with `extra_globals` bound before its code runs."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    mod.__dict__.update(extra_globals or {})
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
