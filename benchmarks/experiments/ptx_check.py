"""Compile the CUDA step's joined kernels to PTX without a GPU: every declared kernel a CUDA
training step launches, alone or joined with others (`rows.fused`, `rows.stepped`), built as
kernels/cuda/fused.py builds it and compiled by numba-cuda's NVVM for a GPU architecture, so a
joined kernel that would not compile on a device (and so would fall back to one launch per
member, with a warning) is found on any machine.

    python benchmarks/experiments/ptx_check.py --ptx-python ENV/bin/python
        [--cases sbn784-200,walk,sim:sir,model:gaussian_vae] [--estimators straight_through,score,disarm,rebar]
        [--cc 9.0] [--ptxas ENV/.../nvidia/cuda_nvcc/bin/ptxas]

ENV is a virtual environment with ppl and numba-cuda with the CUDA 12 toolkit's NVVM
(`pip install -e . "numba-cuda[cu12]"`); no GPU is needed. A case is a jax_peers SBN case, `walk`
(a scan of Bernoulli moves), `sim:<problem>` (benchmarks/simulations.py's model, its defaults) or
`model:<name>` (a bundled model on zeros, each estimator that applies). The step runs once in Numba's simulator
with its launches skipped, every declared kernel routed through `rows.fused` (one member or more),
and each distinct (members, argument types) is recorded; then ENV's Python compiles each with
`cuda.compile_ptx`. One JSON line per case and estimator, then one with the counts and one per
failure with its message; with --ptxas, a line per kernel with its registers, stack and spills.
"""
import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _type(a):
    """An argument's type as the device sees it: (dtype, ndim, C-contiguous) or a scalar's kind."""
    if hasattr(a, "dtype") and hasattr(a, "ndim") and hasattr(a, "is_c_contiguous"):
        return ("array", str(a.dtype), a.ndim, bool(a.is_c_contiguous()))
    if isinstance(a, (bool, np.bool_)):
        return ("bool",)
    if isinstance(a, (int, np.integer)):
        return ("int",) if isinstance(a, int) else ("np", str(np.asarray(a).dtype))
    if isinstance(a, (float, np.floating)):
        return ("float",) if isinstance(a, float) else ("np", str(np.asarray(a).dtype))
    raise TypeError(f"ptx_check: an argument of type {type(a).__name__}")


def walk(est):
    """A scan of 20 steps: each draws a Bernoulli move from the carried position (a simulation)."""
    import ppl
    with ppl.Model(f"walk_{est}") as m:
        x = m.input("x", 2)
        s0 = ppl.Affine(x, 1, name="start")
        w, b = ppl.param("w", 1, -0.4), ppl.param("b", 1, 0.3)

        def body(s, _):
            up = ppl.Bernoulli("up", logits=w * s + b)
            m.cost("step", ppl.total(0.5 * (s * s)))
            return s + 2.0 * up - 1.0, up

        last, ups = ppl.scan(body, s0, length=20)
        m.cost("end", ppl.total(last * last + 0.3 * ppl.rowsum(ups)))
    return m


def record(cases, estimators, batch):
    """{(kind, spec, types, dtype): the first case that launched it} for one step of each case."""
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(HERE, ".."))
    import launch_count as lc
    from ppl.kernels.cuda import fused
    from ppl.calls import Call, Const
    from ppl.lowering import ir, launches
    seen = {}
    single = launches._Run.statements

    def statements(self):   # a run of one member as a one-member rows.fused, so it is compiled too
        if len(self.members) != 1:
            return single(self)
        self.members.append(self.members[0])
        st = single(self)[0]
        self.members.pop()
        spec = eval(str(st.call.args[0]))[:1]
        call = Call(st.call.kernel, [Const(repr(spec)), *st.call.args[1:]])
        return [ir.Stmt(call, st.owner)]

    launches._Run.statements = statements
    for fn in ("fused", "stepped"):
        real = getattr(fused, fn, None)
        if real is None:
            continue

        def rec(spec, *args, _real=real, _fn=fn):
            over = next(a for a in args if hasattr(a, "dtype") and getattr(a, "ndim", 0) >= 1)
            key = (_fn, spec, tuple(_type(a) for a in args), str(over.dtype))
            seen.setdefault(key, current[0])
            return _real(spec, *args)
        setattr(fused, fn, rec)
    from ppl.kernels.cuda import rows
    rows.fused = fused.fused
    if hasattr(fused, "stepped"):
        rows.stepped = fused.stepped
    current = [None]
    import jax_peers as jp
    X = jp.digits784()
    for case in cases:
        for est in estimators:
            if case.startswith("sim:"):   # a simulation problem's ppl model, its default estimators (once)
                if est != estimators[0]:
                    continue
                import simulations as sims
                spec = sims.PPL[case[4:]]
                current[0] = case
                prog = spec.build(sims.PROBLEMS[case[4:]].T, "ptx").compile(dtype=np.float32, target="cuda")
                lc.count_on(prog, spec.data(batch))
                continue
            if case.startswith("model:"):   # a bundled model (ppl.models) on zeros, each estimator that applies
                import ppl
                from ppl.models import get
                current[0] = f"{case}/{est}"
                try:
                    prog = get(case[6:]).build().compile(estimators=jp.ESTIMATORS.get(est, est), dtype=np.float32,
                                                         target="cuda")
                except ppl.ModelError:
                    continue
                lc.count_on(prog, {n: np.zeros((batch, prog.model.nodes[n].width), np.float32)
                                   for n in prog.layout.inputs}, batch)
                continue
            if case == "walk" and est == "rebar":   # REBAR's relaxed rows do not cross a loop's steps
                continue
            current[0] = f"{case}/{est}"
            if case == "walk":
                prog = walk(est).compile(estimators=jp.ESTIMATORS[est], dtype=np.float32, target="cuda")
                lc.count_on(prog, {"x": np.ones((batch, 2), np.float32)})
            else:
                prog = jp.build(case).compile(estimators=jp.ESTIMATORS[est], dtype=np.float32, target="cuda",
                                              **jp.COMPILE.get(est, {}))
                lc.count(prog, X, batch)
    return seen


def _members(kind, spec):
    return [m[0] for m in (spec if kind == "fused" else spec[4])]


def _ptxas(ptxas, ptx, cc):
    """ptxas's figures for one kernel's PTX: registers a thread, spilled bytes, its stack frame."""
    import re
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    out = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", f.name, "-o", os.devnull],
                         capture_output=True, text=True).stderr
    os.unlink(f.name)
    got = {k: int(v) for v, k in re.findall(r"(\d+) (registers|bytes stack frame|bytes spill stores|bytes spill loads)",
                                              out)}
    return {"registers": got.get("registers"), "stack_bytes": got.get("bytes stack frame"),
            "spill_bytes": got.get("bytes spill stores", 0) + got.get("bytes spill loads", 0)}


def compile_all(path, cc, ptxas=None):
    """In ENV (no simulator): each recorded kernel built and compiled to PTX; the failures."""
    from numba import cuda, types
    from ppl.kernels.cuda import core, fused, noise, rebar, relax, rows  # noqa: F401  (the families registered)
    import types as pytypes
    from numba.cuda import dispatcher
    # a device function is typed for the current device's architecture: the one asked, no device
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=cc)
    with open(path, "rb") as f:
        seen = pickle.load(f)

    def numba_type(t):
        if t[0] == "array":
            return types.Array(getattr(types, t[1]), t[2], "C" if t[3] else "A")
        if t[0] == "np":
            return getattr(types, t[1])
        return {"bool": types.boolean, "int": types.int64, "float": types.float64}[t[0]]
    failures, done = [], {"fused": 0, "stepped": 0}
    for (kind, spec, tys, dtype), case in seen.items():
        seg = fused.Segment(spec) if kind == "fused" else fused.Steps(spec)
        try:
            kern = seg.kernel(np.dtype(dtype))
            lead = (types.int64,) if kind == "fused" else (types.int64, types.int64)   # W_ (and R_)
            scratch = () if kind == "fused" else (types.Array(types.float64, 1, "C"),) * len(spec[5])   # its own
            ptx, _ = cuda.compile_ptx(kern.py_func, (*lead, *map(numba_type, tys), *scratch), cc=cc)
            done[kind] += 1
            if ptxas:
                print(json.dumps({"case": case, "kind": kind, "members": _members(kind, spec),
                                  **_ptxas(ptxas, ptx, cc)}), flush=True)
        except Exception as exc:   # noqa: BLE001  (every failure is reported)
            if os.environ.get("PTX_TRACE"):
                import traceback
                traceback.print_exc()
            failures.append({"case": case, "kind": kind, "members": _members(kind, spec),
                             "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:400]}"})
    print(json.dumps({"compiled": done, "failed": len(failures), "cc": ".".join(map(str, cc))}))
    for f in failures:
        print(json.dumps(f))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ptx-python", help="the Python of a virtual environment with numba-cuda and its NVVM")
    ap.add_argument("--cases", default="sbn784-200,sbn784-200-200,walk")
    ap.add_argument("--estimators", default="straight_through,score,disarm,rebar")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--cc", default="9.0")
    ap.add_argument("--ptxas", help="ptxas of the CUDA toolkit: each kernel's registers, stack and spills")
    ap.add_argument("--compile", help=argparse.SUPPRESS)   # the second half, in ENV
    args = ap.parse_args()
    cc = tuple(int(x) for x in args.cc.split("."))
    if args.compile:
        compile_all(args.compile, cc, args.ptxas)
        return
    seen = record(args.cases.split(","), args.estimators.split(","), args.batch)
    by_case = {}
    for key, case in seen.items():
        by_case[case] = by_case.get(case, 0) + 1
    for case, n in by_case.items():
        print(json.dumps({"bench": "ptx_check", "case": case, "new_kernels": n}), flush=True)
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as f:
        pickle.dump(seen, f)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    subprocess.run([args.ptx_python, os.path.abspath(__file__), "--compile", f.name, "--cc", args.cc,
                    *(["--ptxas", args.ptxas] if args.ptxas else [])], env=env, check=True)
    if not os.environ.get("PTX_KEEP"):
        os.unlink(f.name)
    else:
        print(f.name)


if __name__ == "__main__":
    main()
