"""What a cold run of some test files compiles: every `numba:compile` event of the run timed,
its nested compiles subtracted, grouped into generated steps, ppl's own functions (its kernels
and loops: "kernels") and other functions, with ppl's specialisations that take an int or bool
constant counted apart.

    python benchmarks/experiments/suite_compiles.py [--top N] tests/estimators/test_mixed_matrix.py [more test files]

--top N also prints the N kernels compiled most often for a constant (metric
`constant_specialisations:<module>.<function>`, with their exclusive seconds).

The files run in one pytest process (-n 0) on an empty cache folder of their own. JSON lines
{"bench","case","metric","value","unit","baseline","ratio"} (no baseline: these are counts and
seconds of one run; compare two builds by running it in each).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

# the listener, loaded by the pytest process as a plugin (-p suite_compiles_listener)
LISTENER = r'''
import json, os, time
from numba.core import event

_stack, _records = [], []


class _Listener(event.Listener):
    def on_start(self, ev):
        _stack.append([time.perf_counter(), 0.0])

    def on_end(self, ev):
        t0, nested = _stack.pop()
        took = time.perf_counter() - t0
        if _stack:
            _stack[-1][1] += took
        fn = ev.data["dispatcher"].py_func
        _records.append((fn.__module__, fn.__qualname__, str(ev.data["args"]), took - nested))


def pytest_configure(config):
    event.register("numba:compile", _Listener())


def pytest_unconfigure(config):
    with open(os.environ["PPL_SUITE_COMPILES_OUT"], "w") as f:
        json.dump(_records, f)
'''


def emit(case, metric, value, unit):
    print(json.dumps({"bench": "suite_compiles", "case": case, "metric": metric, "value": value, "unit": unit,
                      "baseline": None, "ratio": None}), flush=True)


def main():
    args = sys.argv[1:]
    top = 0
    if args[:1] == ["--top"]:
        top, args = int(args[1]), args[2:]
    files = args
    if not files:
        sys.exit("suite_compiles.py: name the test files to run")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory(prefix="ppl_suite_compiles_") as tmp:
        with open(os.path.join(tmp, "suite_compiles_listener.py"), "w") as f:
            f.write(LISTENER)
        out = os.path.join(tmp, "records.json")
        env = dict(os.environ, PPL_CACHE_DIR=os.path.join(tmp, "cache"), PPL_SUITE_COMPILES_OUT=out,
                   PYTHONPATH=os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")])))
        if not os.path.exists("/dev/nvidia0"):   # the listener imports numba before tests/conftest.py can
            env.setdefault("NUMBA_ENABLE_CUDASIM", "1")   # switch the CUDA simulator on
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "suite_compiles_listener",
               "-p", "no:cacheprovider", *files]
        subprocess.run(cmd, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        with open(out) as f:
            records = json.load(f)
    case = ",".join(os.path.basename(f) for f in files)
    emit(case, "wall", round(wall, 1), "s")
    groups = {"steps": lambda m: m.startswith("ppl_gen_"), "kernels": lambda m: m.startswith("ppl."),
              "other": lambda m: not (m.startswith("ppl_gen_") or m.startswith("ppl."))}
    for name, member in groups.items():
        rs = [r for r in records if member(r[0])]
        emit(case, f"{name}_compiled", len(rs), "specialisations")
        emit(case, f"{name}_compile_exclusive", round(sum(r[3] for r in rs), 1), "s")
    literal = [r for r in records if r[0].startswith("ppl.") and "Literal[" in r[2]]
    emit(case, "kernels_with_a_constant", len(literal), "specialisations")
    emit(case, "kernels_with_a_constant_exclusive", round(sum(r[3] for r in literal), 1), "s")
    by_kernel = {}
    for r in literal:
        n, t = by_kernel.get(f"{r[0]}.{r[1]}", (0, 0.0))
        by_kernel[f"{r[0]}.{r[1]}"] = (n + 1, t + r[3])
    for name, (n, t) in sorted(by_kernel.items(), key=lambda kv: -kv[1][1])[:top]:
        emit(case, f"constant_specialisations:{name}", n, "specialisations")
        emit(case, f"constant_specialisations_exclusive:{name}", round(t, 1), "s")


if __name__ == "__main__":
    main()
