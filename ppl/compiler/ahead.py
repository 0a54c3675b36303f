"""A new step's kernels compiled on two cores: the program's process from the first kernel call
of the step on, a helper process from the last one back.

Nearly all of a new graph's first step, on a machine whose disk cache does not hold the
kernels yet, is compiling ppl's kernels (BENCHMARKS.md, "Cold start"); the step itself is
typed in its statements' order, so its kernels compile one after another on one core. When a
core is free, `start(prog)` launches a Python process (`main`) on the same step with its
kernel calls in reverse order (the order does not change a call's argument types: every buffer
comes from the step's arguments). Both processes fill the same locked disk cache
(kernels/_cache.py): a kernel the other process is compiling is waited for and then loaded, so
the two meet halfway and each kernel is compiled once. The helper compiles and exits; it writes
nothing but the kernels' cache files, and is ended when the program's process exits.

It applies to CPU steps made only of kernel calls (the array lowering), only when the step is
not in the disk cache yet, and only when a core is idle: `PPL_COMPILE_JOBS` (default "auto":
two when the load average leaves a core free) sets it; 1 turns it off.
"""
from __future__ import annotations

import ast
import atexit
import os
import pickle
import subprocess
import sys

ENV = "PPL_COMPILE_JOBS"
_helpers = []   # running helper processes, ended at exit


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
    forward-only call dropped), compiled without a disk cache of its own; None when the step is
    not a straight line of kernel calls."""
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
    return ("\n".join(lines) + "\n\n\n@njit(cache=False, _nrt=False)\n"
            f"def step({args}):\n" + "".join(_indent(b) for b in body))


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
    """Launch the helper for prog's step when it applies (see the module's docstring)."""
    from ..kernels import numba_compat
    if prog.target != "cpu" or "_nrt=False" not in prog.source or jobs() < 2:
        return None
    sig = signature(prog)
    if numba_compat.is_cached(prog.entry, sig):
        return None
    src = reversed_step(prog.source)
    if src is None:
        return None
    name = f"{prog.module.__name__}_ahead_{os.getpid()}"
    path = folder / f"{name}.py"
    path.write_text(src)
    (folder / f"{name}.sig").write_bytes(pickle.dumps(sig))
    env = {**os.environ, ENV: "1"}
    code = f"from ppl.compiler.ahead import main; main({str(path)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not _helpers:
        atexit.register(_end_helpers)
    _helpers.append(proc)
    return proc


def _end_helpers():
    for proc in _helpers:
        if proc.poll() is None:
            proc.terminate()


def main(path: str) -> None:
    """The helper: type the reversed step (compiling its kernels into the disk cache), then remove
    its files. (Importing this module imported ppl, which installed its cache locator and locks.)"""
    import importlib.util
    from pathlib import Path
    p = Path(path)
    try:
        sig = pickle.loads(p.with_suffix(".sig").read_bytes())
        spec = importlib.util.spec_from_file_location(p.stem, p)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[p.stem] = mod
        spec.loader.exec_module(mod)
        mod.step.compile(sig)
    finally:
        for f in (p, p.with_suffix(".sig")):
            try:
                f.unlink()
            except OSError:
                pass

