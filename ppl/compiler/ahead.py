"""A new step's kernels compiled on two cores: the program's process from the first kernel call
of the step on, a helper process from the last one back.

Nearly all of a new graph's first step, on a machine whose disk cache does not hold the
kernels yet, is compiling ppl's kernels (BENCHMARKS.md, "Cold start"); the step itself is
typed in its statements' order, so its kernels compile one after another on one core. When a
core is free, `start(prog)` hands a Python process (`main`) the same step with its kernel calls
in reverse order (the order does not change a call's argument types: every buffer comes from
the step's arguments). The helper only types that step: Numba compiles each kernel a call
reaches while it types the call, and the step's own code, which nobody runs, is never made.
Both processes fill the same locked disk cache (kernels/_cache.py): a kernel the other process
is compiling is waited for and then loaded, so the two meet halfway and each kernel is compiled
once.

One helper serves a process: the steps of programs compiled while it runs (the evaluation
program `ppl train` prepares beside the training one, `Program.prepare_evaluation`) join its
queue, a folder of job files it takes in order; it exits when the queue is empty, having closed
the folder (renamed it) so that no job is left behind unseen, and is ended when the program's
process exits. It writes nothing but the kernels' cache files and removes its own.

It applies to CPU steps made only of kernel calls (the array lowering), only when the step is
not in the disk cache yet, and only when a core is idle: `PPL_COMPILE_JOBS` (default "auto":
two when the load average leaves a core free) sets it; 1 turns it off.
"""
from __future__ import annotations

import ast
import atexit
import os
import itertools
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

ENV = "PPL_COMPILE_JOBS"
_helpers = []   # helper processes started by this process, ended at exit
_queue = None   # (the running helper, its queue folder), or None
_folders = []   # the queue folders of those helpers
_numbers = itertools.count()   # job files (in the order queued) and queue folders
JOB, CLOSED = ".job", ".closed"   # a queued job's suffix; a queue folder's once its helper takes no more


def jobs() -> int:
    """How many processes compile a new step: `PPL_COMPILE_JOBS`, or by default 2 when this
    machine has a core to spare (its 1-minute load average at most cores - 1), else 1."""
    value = os.environ.get(ENV, "auto").strip().lower()
    if value != "auto":
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"{ENV} must be 'auto' or a number of processes, got {value!r}") from None
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:   # pragma: no cover - no load average on this system
        return 1
    return 2 if cores >= 2 and load <= cores - 1 else 1


def reversed_step(source: str) -> str | None:
    """The module `source` with its `step` function's statements after the unpacking of its
    arguments in reverse order (assignments to names kept first, in order; the early return of a
    forward-only call dropped), a plain Python function the helper types (`types_only`); None
    when the step is not a straight line of kernel calls."""
    tree = ast.parse(source)
    fn = next((s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "step"), None)
    if fn is None:
        return None
    head, defs, calls = [], [], []
    for st in fn.body:
        text = ast.get_source_segment(source, st, padded=True)
        if isinstance(st, ast.Assign) and isinstance(st.value, ast.Name) and st.value.id in ("ws2", "ws1", "inputs"):
            head.append(text)
        elif isinstance(st, ast.Assign) and all(isinstance(t, ast.Name) for t in st.targets):
            defs.append(text)
        elif isinstance(st, ast.If) and any(isinstance(b, ast.Return) for b in st.body):
            continue            # `if mode == 0: return loss`
        elif isinstance(st, ast.Return):
            continue
        elif isinstance(st, (ast.Expr, ast.AugAssign, ast.If)):
            calls.append(text)
        else:
            return None         # loops, nested functions: not a straight line of calls
    lines = [ast.get_source_segment(source, n, padded=True) for n in tree.body
             if isinstance(n, (ast.Import, ast.ImportFrom))]
    args = ", ".join(a.arg for a in fn.args.args)
    body = [*head, *defs, *reversed(calls), "return 0.0"]
    return "\n".join(lines) + f"\n\n\ndef step({args}):\n" + "".join(_indent(b) for b in body)


def _indent(text: str) -> str:
    lines = text.splitlines()
    pad = len(lines[0]) - len(lines[0].lstrip())
    return "".join("    " + (line[pad:] if line[:pad].strip() == "" else line.lstrip()) + "\n" for line in lines)


def signature(prog) -> tuple:
    """The argument types of a gradient call of prog's step (what its first call compiles)."""
    import numba
    import numpy as np
    ws2, ws1 = prog.workspace(1)
    inputs = tuple(np.zeros((1, prog.model.nodes[n].width), prog.dtype) for n in prog.layout.inputs)
    values = (prog.theta, prog.grad_buffer, prog.state, ws2, ws1, inputs, 1, np.uint64(0), np.int64(0), 1)
    return tuple(numba.typeof(v) for v in values)


def start(prog, folder) -> subprocess.Popen | None:
    """Queue prog's reversed step on this process's helper, launching one when none runs (when
    it applies: see the module's docstring); the helper, or None."""
    from ..kernels import numba_compat
    if prog.target != "cpu" or "_nrt=False" not in prog.source or jobs() < 2:
        return None
    sig = signature(prog)
    if numba_compat.is_cached(prog.entry, sig):
        return None
    src = reversed_step(prog.source)
    if src is None:
        return None
    job = {"name": f"{prog.module.__name__}_ahead_{os.getpid()}", "source": src, "signature": sig}
    if _queue is not None and _queue[0].poll() is None and _put(_queue[1], job):
        return _queue[0]
    return _launch(folder, job)


def functions(calls, first: bool = False) -> bool:
    """Queue on the running helper, if one runs, the compile of each (jitted function, arguments)
    in `calls` for those arguments' types: module-level functions of ppl.kernels, or the entry
    points of a generated module (imported from its file by the helper); first=True: what the
    program's process needs at its first step, taken right after the step that launched the
    helper. Whether it was queued."""
    if _queue is None or _queue[0].poll() is not None:
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


def _launch(folder, job) -> subprocess.Popen:
    global _queue
    queue = Path(folder) / f"ppl_ahead_{os.getpid()}_{next(_numbers)}"
    queue.mkdir()
    _folders.append(queue)
    _put(queue, job, 0)
    env = {**os.environ, ENV: "1"}
    code = f"from ppl.compiler.ahead import main; main({str(queue)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not _helpers:
        atexit.register(_end_helpers)
    _helpers.append(proc)
    _queue = (proc, queue)
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


def types_only(fn, signature) -> None:
    """Type `fn` (a Python function) for `signature` as Numba's nopython pipeline does, without
    lowering it: the kernels its calls reach are compiled (and cached) on the way."""
    from numba.core import compiler, registry
    target = registry.cpu_target
    compiler.compile_extra(target.typing_context, target.target_context, fn, signature, None,
                           compiler.Flags(), {}, pipeline_class=_types_only_pipeline())


def _types_only_pipeline():
    from numba.core import compiler, typed_passes
    from numba.core.compiler_machinery import FunctionPass, register_pass

    @register_pass(mutates_CFG=False, analysis_only=True)
    class StopAfterTypes(FunctionPass):
        _name = "ppl_stop_after_types"

        def __init__(self):
            FunctionPass.__init__(self)

        def run_pass(self, state):
            raise compiler._EarlyPipelineCompletion("typed")   # compile_extra returns it

    class TypesOnly(compiler.CompilerBase):
        def define_pipelines(self):
            pm = compiler.DefaultPassBuilder.define_untyped_pipeline(self.state, "types only")
            pm.add_pass(typed_passes.NopythonTypeInference, "nopython frontend")
            pm.add_pass(StopAfterTypes, "stop after typing")
            pm.finalize()
            return [pm]
    return TypesOnly


def main(queue: str) -> None:
    """The helper: type each queued reversed step in turn (compiling its kernels into the disk
    cache); when the queue is empty, close it (rename it: the program's process queues no more
    there), take what came in before that, and remove it. (Importing this module imported ppl,
    which installed its cache locator and locks.)"""
    folder = Path(queue)
    closed = folder.with_name(folder.name + CLOSED)
    try:
        while True:
            jobs = sorted(folder.glob(f"*{JOB}"))
            if jobs:
                _run(jobs[0])
                continue
            os.rename(folder, closed)
            for path in sorted(closed.glob(f"*{JOB}")):
                _run(path)
            return
    finally:
        shutil.rmtree(closed, ignore_errors=True)


def _run(path: Path) -> None:
    import importlib
    import importlib.util
    job = pickle.loads(path.read_bytes())
    path.unlink()
    for modname, file, name, sig in job.get("functions", ()):
        mod = sys.modules.get(modname)
        if mod is None and modname.startswith("ppl_gen_"):   # a generated module, as pipeline.load_source loads it
            spec = importlib.util.spec_from_file_location(modname, file)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            spec.loader.exec_module(mod)
        elif mod is None:
            mod = importlib.import_module(modname)
        getattr(mod, name).compile(sig)
    if "source" not in job:
        return
    src = path.with_name(f"{job['name']}.py")
    src.write_text(job["source"])
    try:
        spec = importlib.util.spec_from_file_location(job["name"], src)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[job["name"]] = mod
        spec.loader.exec_module(mod)
        types_only(mod.step, job["signature"])
    finally:
        src.unlink()
