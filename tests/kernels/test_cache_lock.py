"""Numba's disk cache under the ppl cache folder is safe for concurrent processes.

Several processes (pytest-xdist workers, Dask workers, two scripts) compile the same functions
at once into one cache folder: kernels/_cache.py locks each function's index while a process
loads, compiles and saves it, so no index entry points at another signature's machine code and
a function is compiled once, the other processes loading the result.
"""
import json
import os
import subprocess
import sys
import textwrap

MODULE = textwrap.dedent('''
    import numpy as np
    from numba import njit

    @njit(cache=True)
    def f(x):
        s = x * 0
        for i in range(200):
            s += (x + i) * 3 - 1
        return s
''')

RUN = textwrap.dedent('''
    import json, sys, time
    import ppl  # installs the cache lock
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import lockmod
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    vals = [np.int64(3), np.float64(2.5), np.float32(1.5), np.complex128(1 + 2j), np.int32(7)]
    order = [int(c) for c in sys.argv[3]]
    out = {}
    for k in order:
        v = vals[k]
        out[str(k)] = repr(complex(lockmod.f(v)))
    st = lockmod.f.stats
    print(json.dumps({"out": out, "hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values())}))
''')


def _expected(v):
    s = v * 0
    for i in range(200):
        s += (v + i) * 3 - 1
    return s


def _run_all(tmp_path, orders):
    import time
    env = dict(os.environ, PPL_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)
    start = time.time() + 4.0   # every process past its imports, then all at once
    procs = [subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path), str(start), o], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in orders]
    res = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        res.append(json.loads(out.strip().splitlines()[-1]))
    return res


def test_concurrent_processes_share_one_cache_correctly(tmp_path):
    import numpy as np
    (tmp_path / "lockmod.py").write_text(MODULE)
    vals = [np.int64(3), np.float64(2.5), np.float32(1.5), np.complex128(1 + 2j), np.int32(7)]
    want = {str(k): repr(complex(_expected(v))) for k, v in enumerate(vals)}
    # three processes, each compiling all five signatures in its own order
    res = _run_all(tmp_path, ["01234", "43210", "24130"])
    for r in res:
        assert r["out"] == want
    # each signature compiled by one process only; the others waited and loaded its code
    assert sum(r["misses"] for r in res) == 5, res
    # a fresh process loads every signature from the cache, each with its own machine code
    (again,) = _run_all(tmp_path, ["40312"])
    assert again["out"] == want and again["hits"] == 5 and again["misses"] == 0, again
