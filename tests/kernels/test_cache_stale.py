"""A stale cache entry is never used: after a kernel's source changes (here a helper in another
file that the kernel inlines, the case Numba's own cache misses) or under another Numba
version, the kernel is compiled again and computes what its source now says.

Each run is a fresh process importing a copy of the installed package (ppl/, with kernels/ and
models/ placed as ppl.kernels and ppl.models) from a temporary folder, with its own cache
folder, and calling one kernel: `softplus_fwd` (kernels/families/activations.py), whose scalar
body is `softplus` of kernels/math/scalar.py."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

RUN = """
import json, os, sys
import numba
if os.environ.get("FAKE_NUMBA_VERSION"):
    numba.__version__ = os.environ["FAKE_NUMBA_VERSION"]
import numpy as np
import ppl
from ppl.kernels.cpu import core
x = np.linspace(-3.0, 3.0, 7).reshape(1, 7)
out = np.empty_like(x)
core.softplus_fwd(x, out)
print(json.dumps({"file": ppl.__file__, "out": out[0].tolist(),
                  "hits": sum(core.softplus_fwd.stats.cache_hits.values()),
                  "misses": sum(core.softplus_fwd.stats.cache_misses.values())}))
"""


def _copy(site: Path) -> Path:
    """The package as installed: site/ppl, site/ppl/kernels, site/ppl/models."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "ppl", site / "ppl", ignore=skip)
    shutil.copytree(ROOT / "kernels", site / "ppl" / "kernels", ignore=skip)
    shutil.copytree(ROOT / "models", site / "ppl" / "models", ignore=skip)
    return site / "ppl" / "kernels" / "math" / "scalar.py"


def _run(site: Path, cache: Path, fake_numba=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE_DIR", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(site), PPL_CACHE_DIR=str(cache), FAKE_NUMBA_VERSION=fake_numba or "")
    res = subprocess.run([sys.executable, "-c", RUN], cwd=site, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).resolve().is_relative_to(site.resolve()), got["file"]   # the copy, not the checkout
    return got


def test_a_changed_kernel_source_or_numba_version_is_compiled_again(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    scalar = _copy(site)
    x = np.linspace(-3.0, 3.0, 7)
    exact = np.logaddexp(0.0, x)

    cold = _run(site, cache)
    assert np.allclose(cold["out"], exact, rtol=1e-12) and cold["misses"] >= 1 and cold["hits"] == 0, cold
    warm = _run(site, cache)   # the test of the test: an unchanged source is loaded from the cache
    assert warm["out"] == cold["out"] and warm["hits"] >= 1 and warm["misses"] == 0, warm

    # the helper the kernel inlines changes in another file: softplus(x) + 1
    src = scalar.read_text()
    body = "    return max(x, like(x, 0.0)) + l\n"
    assert src.count(body) == 1
    scalar.write_text(src.replace(body, "    return max(x, like(x, 0.0)) + l + like(x, 1.0)\n"))
    changed = _run(site, cache)
    assert np.allclose(changed["out"], exact + 1.0, rtol=1e-12) and changed["hits"] == 0, changed

    # the source restored: its own entries again; under another Numba version they are not used
    scalar.write_text(src)
    assert _run(site, cache)["out"] == cold["out"]
    other = _run(site, cache, fake_numba="0.0.1")
    assert other["out"] == cold["out"] and other["hits"] == 0 and other["misses"] >= 1, other


LAZY = """
import json
import ppl
from ppl.kernels.cpu import core
import numpy as np
before = core.softplus_fwd._cache._made is None
unmade = sum(1 for k in vars(core).values() if getattr(getattr(k, "_cache", None), "_made", 0) is None)
x = np.linspace(-3.0, 3.0, 7).reshape(1, 7)
core.softplus_fwd(x, np.empty_like(x))
print(json.dumps({"before": before, "unmade": unmade, "after": core.softplus_fwd._cache._made is not None,
                  "hits": sum(core.softplus_fwd.stats.cache_hits.values())}))
"""


def test_import_makes_no_kernel_cache_and_a_first_call_loads_from_disk(tmp_path):
    """`import ppl` makes no kernel's disk cache (numba_compat.lazy_function_caches): softplus_fwd's
    and every other kernel of cpu/core are unmade after the import; its first call makes it, and
    in a second process the call loads the compiled kernel from disk (a cache hit)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE_DIR")}
    env.update(PPL_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", LAZY], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    for got in runs:
        assert got["before"] and got["after"] and got["unmade"] > 100, got
    assert runs[1]["hits"] >= 1, runs
