"""What networkx costs ppl: the start of a process, and a new graph's compile.

start: `import ppl`, `ppl --help` and `ppl list` in fresh interpreters, each run with ppl as
installed (networkx imported where the first graph is built) against networkx imported first (the
cost of a top-level import: the same modules load, only earlier), alternating; medians. Also
`python -X importtime -c "import ppl"`: ppl's cumulative time, and networkx's when imported first.

compile: `m.compile` (the graph passes, cached step modules: no Numba compile) of the two-layer
SBN (models/sbn.py, latent 32-32) and of a chain of 100 width-1 Bernoulli units through Affine
layers (score function; and REBAR, whose lowering asks for ancestors per pair of nodes):
--compiles per fresh process, --rounds / 3 processes (at least 2) per installation; and the time
spent inside ppl/analysis/graph.py's functions (outermost calls only); medians over all compiles.

With `--against PYTHON` (the interpreter of another installation of ppl, e.g. an older commit's)
every figure is also measured for it, alternating with this one; `baseline` is then that
installation's, else (start) networkx imported first.

    OPENBLAS_NUM_THREADS=1 python benchmarks/experiments/graph_networkx.py [--rounds 10] [--parts start,compile]
        [--compiles 5] [--against PYTHON]

JSON lines {"bench","case","metric","value","unit","baseline","ratio"}: ratio = baseline / value
(> 1: this installation is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

CLI = "import sys; sys.argv = ['ppl'] + sys.argv[1:]; from ppl.cli import main; sys.exit(main())"
STARTS = {"import ppl": ("import ppl",), "ppl --help": (CLI, "--help"), "ppl list": (CLI, "list")}
GRAPH_FUNCTIONS = ("analyse", "validate", "build", "ancestors", "descendants", "find_cycle", "topological_order")


def _run(python, code, *args, cwd) -> float:
    t0 = time.perf_counter()
    subprocess.run([python, "-c", code, *args], check=True, stdout=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - t0


def _importtime(python, first, cwd) -> dict:
    err = subprocess.run([python, "-X", "importtime", "-c", first + "import ppl"], check=True, cwd=cwd,
                         capture_output=True, text=True).stderr
    cum = {}
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$", line)
        if m:
            cum.setdefault(m.group(3), int(m.group(1)) / 1e6)
    return {"ppl": cum["ppl"], "networkx": cum.get("networkx", 0.0)}


def _line(case, metric, value, baseline, unit="s", **extra):
    print(json.dumps({"bench": "graph_networkx", "case": case, "metric": metric, "value": round(value, 6),
                      "unit": unit, "baseline": round(baseline, 6), "ratio": round(baseline / value, 3), **extra}),
          flush=True)


def start(rounds, against, cwd):
    ways = {"value": (sys.executable, ""), "eager": (sys.executable, "import networkx; ")}
    if against:
        ways["against"] = (against, "")
    walls = {(c, w): [] for c in STARTS for w in ways}
    imports = {w: [] for w in ways}
    for r in range(rounds):
        order = list(ways) if r % 2 == 0 else list(ways)[::-1]
        for case, (code, *args) in STARTS.items():
            for w in order:
                python, first = ways[w]
                walls[case, w].append(_run(python, first + code, *args, cwd=cwd))
        for w in order:
            python, first = ways[w]
            imports[w].append(_importtime(python, first, cwd))
    base = "against" if against else "eager"
    for case in STARTS:
        med = {w: statistics.median(walls[case, w]) for w in ways}
        _line(case, "wall_s", med["value"], med[base], baseline_is=base,
              **{f"{w}_s": round(v, 4) for w, v in med.items()})
    med = {w: {k: statistics.median(d[k] for d in imports[w]) for k in ("ppl", "networkx")} for w in ways}
    _line("python -X importtime -c 'import ppl'", "ppl_cumulative_s", med["value"]["ppl"], med[base]["ppl"],
          baseline_is=base, networkx_imported_first_s=round(med["eager"]["networkx"], 4))


def _chain(n=100):
    import ppl
    with ppl.Model(f"chain{n}") as m:
        x = m.input("x", 1)
        prev = x
        for i in range(n):
            prev = ppl.Bernoulli(f"h{i}", logits=ppl.Affine(prev, 1, name=f"a{i}"))
        m.cost("recon", ppl.bernoulli_nll(ppl.Affine(prev, 1, name="dec"), target=x))
    return m


def child(k):
    """K compiles of each case in this process: {case: {"compile": [s], "graph": [s]}}."""
    import ppl.analysis.graph as G
    from ppl.models import sbn
    spent, depth = [0.0], [0]

    def timed(f):
        def wrapper(*a, **kw):
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return f(*a, **kw)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[0] += time.perf_counter() - t0
        return wrapper

    for name in GRAPH_FUNCTIONS:
        if hasattr(G, name):
            setattr(G, name, timed(getattr(G, name)))
    cases = {"sbn_2layer": (lambda: sbn.build(latent=(32, 32)), "auto"), "chain100": (_chain, "score"),
             "chain100_rebar": (_chain, "rebar")}
    out = {}
    for case, (build, est) in cases.items():
        build().compile(seed=0, estimators=est)   # the step module written and cached
        out[case] = {"compile": [], "graph": []}
        for _ in range(k):
            m = build()
            spent[0] = 0.0
            t0 = time.perf_counter()
            m.compile(seed=0, estimators=est)
            out[case]["compile"].append(time.perf_counter() - t0)
            out[case]["graph"].append(spent[0])
    print(json.dumps(out))


def compile_part(rounds, against, cwd, k=5):
    ways = {"value": sys.executable}
    if against:
        ways["against"] = against
    runs = {w: [] for w in ways}
    for r in range(rounds):
        for w in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
            out = subprocess.run([ways[w], os.path.abspath(__file__), "--child", str(k)], check=True, cwd=cwd,
                                 capture_output=True, text=True).stdout
            runs[w].append(json.loads(out.strip().splitlines()[-1]))
    for case in runs["value"][0]:
        for metric in ("compile", "graph"):
            med = {w: statistics.median(v for run in runs[w] for v in run[case][metric]) for w in ways}
            _line(case, f"{metric}_s", med["value"], med.get("against", med["value"]),
                  baseline_is="against" if against else "value", compiles=rounds * k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--parts", default="start,compile")
    ap.add_argument("--compiles", type=int, default=5, help="compiles per case in each fresh process")
    ap.add_argument("--against", metavar="PYTHON", help="another installation's interpreter, the baseline")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as cwd:   # no source tree on sys.path ahead of the installation
        load = os.getloadavg()[0]
        print(json.dumps({"bench": "graph_networkx", "load": round(load, 2), "python": sys.executable,
                          "against": args.against}), flush=True)
        if "start" in args.parts:
            start(args.rounds, args.against, cwd)
        if "compile" in args.parts:
            compile_part(max(2, args.rounds // 3), args.against, cwd, args.compiles)


if __name__ == "__main__":
    main()
