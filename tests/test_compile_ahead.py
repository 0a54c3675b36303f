"""A new step's kernels compiled by two processes (ppl/compiler/ahead.py): the helper's reversed
step calls the same kernels on the same buffers, the helper runs only where it applies, and a
program compiled with it computes what one compiled alone computes."""
import ast
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from ppl.compiler.pipeline import ahead as compile_ahead
from ppl.compiler.pipeline import generate_source
from ppl.models import gaussian_vae, sbn


def _calls(source, fn):
    tree = ast.parse(source)
    f = next(s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == fn)
    return Counter(ast.unparse(n) for st in f.body for n in ast.walk(st) if isinstance(n, ast.Call))


@pytest.mark.parametrize("build", [sbn.build, gaussian_vae.build])
def test_the_reversed_step_calls_the_same_kernels_in_reverse(build):
    src = generate_source(build())
    rev = compile_ahead.reversed_step(src)
    assert rev is not None
    assert _calls(rev, "step") == _calls(src, "step")
    body = [ast.unparse(s) for s in next(s for s in ast.parse(rev).body if isinstance(s, ast.FunctionDef)).body]
    fwd = [ast.unparse(s) for s in next(s for s in ast.parse(src).body if isinstance(s, ast.FunctionDef)
                                        and s.name == "step").body]
    first, last = fwd.index(next(s for s in fwd if s.startswith("rows.fill(rw_"))), len(fwd) - 1
    assert body.index(fwd[first]) > body.index(fwd[last - 1])   # the backward pass's last call comes first


def test_the_row_fused_step_has_no_helper():
    from ppl.models import toy_bernoulli
    src = generate_source(toy_bernoulli.build())
    assert "_nrt=False" not in src or compile_ahead.reversed_step(src) is None


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


SCRIPT = """
import numpy as np, subprocess, ppl
from ppl import compile_ahead
from ppl.models import sbn
prog = sbn.build().compile()
helpers = list(compile_ahead._helpers)
x = (np.random.default_rng(0).random((8, 64)) > 0.5).astype(np.float32)
loss, g = prog.grad({"x": x}, seed=3)
rc = [h.wait(timeout=300) for h in helpers]
np.save(OUT, np.concatenate([[loss, len(helpers), *rc], prog.grad_buffer]))
"""


@pytest.mark.slow
def test_a_step_compiled_with_the_helper_computes_the_same(tmp_path):
    """Oracle: the same program compiled in one process (no helper), gradient bit for bit."""
    out = tmp_path / "with.npy"
    env = {**os.environ, "PPL_CACHE_DIR": str(tmp_path / "cache"), "PPL_COMPILE_JOBS": "2"}
    subprocess.run([sys.executable, "-c", SCRIPT.replace("OUT", repr(str(out)))], env=env, check=True, timeout=600)
    got = np.load(out)
    assert got[1] == 1 and got[2] == 0, "one helper ran, and exited cleanly"
    assert not list((tmp_path / "cache").glob("*_ahead_*")), "the helper removed its files"
    prog = sbn.build().compile()
    x = (np.random.default_rng(0).random((8, 64)) > 0.5).astype(np.float32)
    loss, _ = prog.grad({"x": x}, seed=3)
    assert got[0] == loss
    np.testing.assert_array_equal(got[3:], prog.grad_buffer)
