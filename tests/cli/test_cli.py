"""The `ppl` command line, run in-process through main(argv) with tiny step counts: output,
files and exit codes (0 on success, 2 with one clear line on bad arguments)."""
import json
import re

import numpy as np
import pytest

from ppl.cli import main, parse_estimators, UsageError


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def run_fail(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_help_reads_well(capsys):
    code, out, _ = run_fail(capsys, "--help")
    assert code == 0
    for word in ("train", "explain", "compare", "list", "ppl train sbn", "estimator specs"):
        assert word in out
    code, out, _ = run_fail(capsys, "train", "--help")
    assert code == 0 and "--estimator" in out and "--target" in out and "sbn" in out


def test_train_sbn_prints_table_progress_and_report(capsys, tmp_path):
    code, out, err = run(capsys, "train", "sbn", "--steps", "40", "--model-opt", "latent=8", "--out",
                         str(tmp_path))
    assert code == 0
    assert "h1   | Bernoulli" in out and "disarm" in out                       # the explain table
    assert "the run's 40 steps" in out   # chosen for a run of 40 steps: no program of its own measured
    assert "40/40" in err and "loss=" in err                                   # the progress bar
    assert "test_elbo" in out and "test_iwae_100" in out and "test_exact_ll" in out and "ms/step" in out
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["metrics"]["test_elbo"] < 0 and (tmp_path / "params.npz").exists()
    # compile time includes the JIT compile (or cache load) that happens at the first step
    (total, graph, jit), = re.findall(r"compile (\S+) s \(graph (\S+) s, JIT at the first step (\S+) s\)", out)
    assert float(total) == pytest.approx(float(graph) + float(jit), abs=0.11) and rep["compile_s"] >= float(jit) - 0.05
    assert (tmp_path / "checkpoint.npz").exists()
    # the curve: the training loss record (40 steps: a point per step) and ~20 evaluations by
    # default with --out, training seconds rising; cells without a value are empty
    rows = (tmp_path / "curve.csv").read_text().splitlines()
    assert rows[0] == ("step,train_seconds,train_loss_ema,heldout_loss,train_loss_mean,train_loss_min,"
                       "train_loss_max") and len(rows) == 41
    cells = np.array([[float(c) if c else np.nan for c in r.split(",")] for r in rows[1:]])
    steps, secs, ema, held, mean, lo, hi = cells.T
    assert list(steps) == list(range(1, 41)) and np.all(np.isfinite(ema)) and np.all(lo == mean) and np.all(hi == mean)
    ev = np.isfinite(held)
    assert [int(s) for s in steps[ev]] == list(range(2, 41, 2)), "held-out rows of curve.csv:\n" + "\n".join(rows)
    assert np.all(np.diff(secs[ev]) > 0) and np.all(np.isnan(secs[~ev])), "\n".join(rows)
    code, _, err = run_fail(capsys, "train", "sbn", "--steps", "4", "--eval-every", "0", "-q")
    assert code == 2 and "--eval-every must be >= 1" in err


def test_train_resumes_from_its_out_folder(capsys, tmp_path):
    """--resume continues a run from DIR/checkpoint.npz: 10 steps, then resumed to 20, give the
    parameters of 20 uninterrupted steps, bit for bit; without --out it is a clear error."""
    base = ("train", "sbn", "--model-opt", "latent=8", "-q", "--seed", "3")
    assert run(capsys, *base, "--steps", "20", "--out", str(tmp_path / "a"))[0] == 0
    assert run(capsys, *base, "--steps", "10", "--out", str(tmp_path / "b"))[0] == 0
    code, out, _ = run(capsys, *base, "--steps", "20", "--out", str(tmp_path / "b"), "--resume")
    assert code == 0 and "resuming from" in out
    a, b = np.load(tmp_path / "a" / "params.npz"), np.load(tmp_path / "b" / "params.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    code, _, err = run_fail(capsys, "train", "sbn", "--steps", "4", "--resume", "-q")
    assert code == 2 and "--resume continues from DIR/checkpoint.npz: give --out DIR" in err


def test_train_policy_fast_and_node_override(capsys):
    code, out, _ = run(capsys, "train", "sbn", "--steps", "5", "-q", "--model-opt", "latent=8",
                       "--policy", "fast")
    assert code == 0 and "reinmax" in out
    code, out, _ = run(capsys, "train", "sbn", "--steps", "5", "-q", "--model-opt", "latent=8,4",
                       "--estimator", "h1=score:baseline=moving_average,h2=straight_through", "--samples", "1")
    assert code == 0 and "score (baseline=moving_average)" in out and "straight_through" in out


def test_train_says_when_the_batch_is_larger_than_the_data(capsys):
    code, out, _ = run(capsys, "train", "sbn", "--steps", "2", "-q", "--model-opt", "latent=8", "--policy", "fast",
                       "--batch", "100000")
    assert code == 0 and "--batch 100000 is larger than the training data's 1500 rows" in out


def test_explain_and_list(capsys):
    code, out, _ = run(capsys, "explain", "categorical_vae")
    assert code == 0 and "gumbel_softmax" in out and "| why" in out
    code, out, _ = run(capsys, "list")
    assert code == 0 and "toy_bernoulli" in out and "sbn" in out
    for cite in ("Neal 1992", "Williams 1992", "Dong, Mnih & Tucker 2020", "Tucker, Mnih, Maddison"):
        assert cite in out   # a citation line per model and estimator


def test_explain_policy_autotune_prints_its_table(capsys, monkeypatch):
    # the programs of their own weighed by their rows, counted, not by a timing: enumeration's
    # program and DisARM's take the same rows, and their timed ratio is noise around 1
    from ppl.compiler import measure
    monkeypatch.setattr(measure, "TIME_ROUNDS", 0)
    code, out, _ = run(capsys, "explain", "toy_bernoulli", "--policy", "autotune")
    assert code == 0 and "measured (* chosen)" in out and "excluded: DisARM" in out
    assert "disarm *" in out   # zero variance for one unit, two rows: tied with enumeration, the rule table's choice
    code, _, err = run_fail(capsys, "compare", "toy_bernoulli", "--estimators", "score", "--policy", "autotune")
    assert code == 2 and "invalid choice: 'autotune'" in err


def test_compare_variance_counts_the_model_parameters_only():
    """`ppl compare`'s gradient-variance column: REBAR's eta / temperature and RELAX's control
    variate are the estimator's parameters, not the model's (they once dominated the column)."""
    from ppl.cli import gradient_variance
    from ppl.models import sbn
    d = sbn.data()["train"]["x"][:16]
    rebar = sbn.build(latent=(8,), pixels=64).compile(estimators="rebar", dtype=np.float64)
    score = sbn.build(latent=(8,), pixels=64).compile(estimators="score", dtype=np.float64)
    assert any(k.startswith("rebar.") for k in rebar.params)
    assert rebar.model_param_names() == score.model_param_names()
    v = gradient_variance(rebar, {"x": d}, 16, draws=20)
    from ppl.runtime.diagnostics import DRAW_SEED, gradient_stats
    g = np.array([np.concatenate([gr[k].ravel() for k in score.model_param_names()])
                  for gr in (rebar.grad({"x": d}, seed=DRAW_SEED + s)[1] for s in range(20))])
    assert v == pytest.approx(float(g.var(0, ddof=1).sum()), rel=1e-9)
    # the same figure as ppl.diagnostics' (same parameters: both compiled with init seed 0)
    st = gradient_stats(sbn.build(latent=(8,), pixels=64), {"x": d}, ["rebar"], draws=20, exact=False)
    assert v == pytest.approx(st[0].total_variance, rel=1e-12)


def test_explain_the_importance_weighted_bound(capsys):
    code, out, _ = run(capsys, "explain", "sbn", "--objective", "iwae", "--samples", "5")
    assert code == 0 and "vimco" in out and "objective: iwae" in out and "K = 5" in out


def test_compare_toy_bernoulli_table(capsys, tmp_path):
    code, out, _ = run(capsys, "compare", "toy_bernoulli", "--estimators", "score,enumerate", "--steps", "30",
                       "--seeds", "2", "--grad-draws", "20", "-q", "--out", str(tmp_path))
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert len(lines) == 4 and "gradient variance" in lines[0] and "ms / step" in lines[0]
    assert lines[2].startswith("| score |") and lines[3].startswith("| enumerate |")
    assert float(lines[3].split("|")[3]) < 1e-20 < float(lines[2].split("|")[3])  # exact vs noisy
    assert (tmp_path / "compare.md").exists() and "exact_objective, lower is better" in lines[0]
    assert "gradient variance at init, state warmed 20 steps (trace, model parameters), lower is better" in lines[0]
    table = np.genfromtxt(tmp_path / "summary.csv", delimiter=",", names=True, dtype=None, encoding=None)
    assert list(table.dtype.names)[:6] == ["estimator", "exact_objective_mean", "exact_objective_sd", "seeds",
                                           "grad_variance", "ms_per_step"]
    assert [str(e) for e in table["estimator"]] == ["score", "enumerate"] and list(table["seeds"]) == [2, 2]
    assert float(lines[2].split("|")[2].split("±")[0]) == pytest.approx(table["exact_objective_mean"][0], rel=1e-5)
    # heldout.csv, what heldout.png draws: 5 evaluations per run, the last the table's number
    ev = np.genfromtxt(tmp_path / "heldout.csv", delimiter=",", names=True, dtype=None, encoding=None)
    for i, est in enumerate(("score", "enumerate")):
        last = [v for e, s, st, v in zip(ev["estimator"], ev["seed"], ev["step"], ev["exact_objective"])
                if e == est and st == 30]
        assert len(last) == 2 and np.mean(last) == pytest.approx(table["exact_objective_mean"][i], rel=1e-9)
    assert sorted(set(ev["step"].tolist())) == [6, 12, 18, 24, 30]
    # each run's fitted parameters, as Program.save writes them: they load into the model's program
    saved = sorted(p.name for p in (tmp_path / "params").iterdir())
    assert saved == ["enumerate_seed0.npz", "enumerate_seed1.npz", "score_seed0.npz", "score_seed1.npz"]
    from ppl.models import toy_bernoulli
    prog = toy_bernoulli.build().compile(estimators="score", dtype=np.float64)
    before = prog.theta.copy()
    prog.load(tmp_path / "params" / "score_seed1.npz")
    assert not np.array_equal(prog.theta, before)   # trained, not the initial values


@pytest.mark.parametrize("argv,msg", [
    (("train", "nosuchmodel"), "invalid choice: 'nosuchmodel'"),
    (("train", "sbn", "--steps", "ten"), "invalid int value"),
    (("train", "sbn", "--steps", "0"), "--steps must be >= 1"),
    (("train", "sbn", "--lr", "-1"), "--lr must be > 0"),
    (("train", "sbn", "--estimator", "nosuch"), "unknown estimator 'nosuch'"),
    (("train", "sbn", "--estimator", "h9=score"), "unknown stochastic nodes: h9"),
    (("train", "gaussian_vae", "--estimator", "straight_through"), "does not apply"),
    (("train", "sbn", "--model-opt", "colour=red"), "--model-opt"),
    # --target cuda without a GPU: tests/runtime/test_cuda_program.py (a subprocess without the simulator)
    (("compare", "sbn"), "--estimators"),
    (("train", "sbn", "--objective", "iwae", "--samples", "1"), "objective 'iwae' is a bound over the samples=K draws"),
    (("train", "sbn", "--objective", "elbo", "--estimator", "vimco"), "estimator 'vimco' does not apply"),
    ((), "COMMAND"),
])
def test_bad_arguments_exit_2_with_a_clear_message(capsys, argv, msg):
    code, _, err = run_fail(capsys, *argv)
    assert code == 2
    assert msg in err, err


def test_parse_estimators():
    assert parse_estimators("auto") == "auto"
    assert parse_estimators("score") == "score"
    assert parse_estimators("score:baseline=loo") == ("score", {"baseline": "loo"})
    assert parse_estimators("z=gumbel_softmax:temperature=0.3,h=score") == {
        "z": ("gumbel_softmax", {"temperature": 0.3}), "h": "score"}
    with pytest.raises(UsageError, match="key=value"):
        parse_estimators("score:loo")
    with pytest.raises(UsageError, match="one name for every node"):
        parse_estimators("score,straight_through")


USER_MODEL = '''
import ppl
from ppl import Model, Affine, Bernoulli

DEFAULTS = dict(steps=30, batch=16)


def build(latent=8):
    with Model("my_sbn") as m:
        x = m.input("x", 20)
        h = Bernoulli("h", logits=Affine(x, latent, name="enc"))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("prior", ppl.bernoulli_nll(ppl.param("prior", latent), target=h))
        m.cost("recon", ppl.bernoulli_nll(Affine(h, 20, name="dec"), target=x))
    return m
'''


def test_user_model_file(capsys, tmp_path):
    """MODEL as path/to/file.py:FUNCTION: train, compare and explain take it, with --data."""
    f = tmp_path / "mymodel.py"
    f.write_text(USER_MODEL)
    data = tmp_path / "d.npz"
    np.savez(data, x=(np.random.default_rng(0).random((100, 20)) < 0.3).astype(np.float32))
    code, out, _ = run(capsys, "train", f"{f}:build", "--data", str(data), "-q", "--model-opt", "latent=6")
    assert code == 0 and "report" in out and "test_loss" in out and "30 steps" in out   # the file's DEFAULTS
    code, out, _ = run(capsys, "compare", f"{f}:build", "--data", str(data), "--estimators", "score,disarm",
                       "--grad-draws", "5", "--quiet")
    assert code == 0 and "| score |" in out and "| disarm |" in out
    code, out, _ = run(capsys, "explain", f"{f}:build")
    assert code == 0 and "h " in out
    for argv, said in [((f"{f}:nope", "--data", str(data)), "has no function 'nope'"),
                       ((f"{f}:build",), "give its data with --data FILE"),
                       ((str(tmp_path / "none.py") + ":build", "--data", str(data)), "not found"),
                       (("bogus",), "path/to/file.py:FUNCTION")]:
        code, _, err = run_fail(capsys, "train", *argv)
        assert code == 2 and said in err, err
    bad = tmp_path / "broken.py"
    bad.write_text("import ppl\n\ndef none():\n    with ppl.Model('x') as m:\n        m.input('x', 20)\n\n"
                   "def boom(n=1):\n    raise ValueError('no such layer')\n")
    for fn, said in (("none", "none() returned NoneType, not a ppl.Model; return the model"),
                     ("boom", "boom() raised ValueError at line 8: no such layer; fix the model file")):
        code, _, err = run_fail(capsys, "train", f"{bad}:{fn}", "--data", str(data))
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_fail(capsys, "train", f"{bad}:boom", "--data", str(data), "--model-opt", "m=2")
    assert code == 2 and "--model-opt m:" in err and "its options: n" in err, err   # the signature kept
    x = tmp_path / "wide.npz"
    np.savez(x, x=np.zeros((10, 21), np.float32))
    code, _, err = run_fail(capsys, "train", f"{f}:build", "--data", str(x))
    assert code == 2 and "has width 20" in err


def _cache_files(root):
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.suffix in (".nbi", ".nbc", ".py")}


def test_warmup_fills_an_empty_cache_and_train_then_compiles_nothing(tmp_path):
    """ppl warmup MODEL into an empty PPL_CACHE_DIR writes the kernels' and the step's cache
    files; a later `ppl train MODEL` (another process) loads them: it adds no cache file."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PPL_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_CACHE_DIR", None)
    r = subprocess.run([sys.executable, "-m", "ppl.warmup", "toy_bernoulli", "--jobs", "1"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "toy_bernoulli" in r.stdout and "done" in r.stdout
    before = _cache_files(tmp_path / "cache")
    assert any(p.suffix == ".nbc" for p in before) and any(p.suffix == ".py" for p in before)
    r = subprocess.run([sys.executable, "-m", "ppl.cli", "train", "toy_bernoulli", "--steps", "5", "--quiet"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _cache_files(tmp_path / "cache") == before


def test_warmup_names_a_bad_model(capsys):
    code, _, err = run_fail(capsys, "warmup", "nope")
    assert code == 2 and "unknown model(s) nope" in err and "sbn" in err
    code, _, err = run_fail(capsys, "warmup", "sbn", "--jobs", "0")
    assert code == 2 and "--jobs must be >= 1" in err


PLATED_MODEL = '''
import ppl
from ppl.language import dist

DEFAULTS = dict(steps=40, batch=16, lr=0.05)


def build():
    with ppl.Model("plated_poisson") as m:
        x, k = m.input("x", 2), m.input("k", 1)
        w = ppl.Normal("w", ppl.param("w_loc", 2), ppl.softplus(ppl.param("w_s", 2, init=-2.0)))
        m.latent(w, dist.Normal(0.0, 1.0))
        with m.plate("data"):   # no size: the rows it is fit on
            m.observe("lik", dist.Poisson(rate=ppl.exp(ppl.rowdot(x, w))), k)
    return m
'''


def test_a_plated_model_file_without_its_size_trains_and_reports_a_heldout_score(capsys, tmp_path):
    f = tmp_path / "plated.py"
    f.write_text(PLATED_MODEL)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    data = tmp_path / "counts.npz"
    np.savez(data, x=x, k=rng.poisson(np.exp(x @ [0.5, -0.3]))[:, None].astype(float))
    code, out, _ = run(capsys, "train", f"{f}:build", "--data", str(data), "-q")
    assert code == 0 and "test_lppd" in out and "test_loss" in out, out
    lppd = float(out.split("test_lppd")[1].split()[0])
    assert -3.0 < lppd < 0.0                       # a log density per count row, finite
    code, out, _ = run(capsys, "compare", f"{f}:build", "--data", str(data), "--estimators", "pathwise,score",
                       "--grad-draws", "5", "--quiet")
    assert code == 0 and "| pathwise |" in out and "| score |" in out, out


def test_warmup_covers_every_law():
    """ppl warmup's default jobs hold "laws" (first: the longest), whose tables name every law an
    automatic guide covers as a prior and every law with data of its own (not grouped) as a
    likelihood; its job compiles them in a process of its own."""
    from ppl.distributions import DISTRIBUTIONS
    from ppl.language.declare import AUTO_SUPPORTS, DATA_SUPPORT
    from ppl import warmup
    priors, liks = warmup._law_tables()
    for kind, d in DISTRIBUTIONS.items():
        if d.constructor is None:
            continue
        if d.support in AUTO_SUPPORTS:
            assert kind in priors, kind
        if d.support in DATA_SUPPORT and not d.grouped:
            assert kind in liks, kind
    assert "compile_laws" in " ".join(warmup._command(warmup.LAWS, ()))
    assert warmup.default_jobs()[0] == "laws" and "sbn" in warmup.default_jobs()
