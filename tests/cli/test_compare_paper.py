"""`ppl compare` for papers: two estimators and two seeds write one compare.csv row per run
(the headline metric, the test IWAE-k bound, the train ELBO, the run's hyper-parameters),
summary.csv, the LaTeX table, and the gradient variance along training (variance.csv,
variance.png); the numbers are read back and checked against the saved parameters."""
import csv
import importlib.util

import numpy as np
import pytest

from ppl.cli import main

PLOTS = importlib.util.find_spec("matplotlib") is not None


def _run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().out


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_compare_writes_per_seed_rows_iwae_hyperparameters_and_variance(capsys, tmp_path):
    code, out = _run(capsys, "compare", "sbn", "--estimators", "score,disarm", "--seeds", "2", "--steps", "40",
                     "--model-opt", "latent=8", "--iwae-k", "5", "--eval-points", "2", "--grad-draws", "5",
                     "--track-variance", "20", "--format", "latex", "-q", "--out", str(tmp_path))
    assert code == 0
    assert r"\begin{tabular}{lrrrrr}" in out and "IWAE-5" in out and r"train ELBO" in out   # the printed table
    rows = _csv(tmp_path / "compare.csv")
    assert [(r["estimator"], r["seed"]) for r in rows] == [("score", "0"), ("score", "1"), ("disarm", "0"),
                                                          ("disarm", "1")]
    for r in rows:   # the run's hyper-parameters, as given or the model's defaults
        assert (r["model"], r["steps"], r["batch"], r["optimizer"], r["lr"], r["dtype"], r["samples"]) == \
            ("sbn", "40", "32", "adam", "0.001", "float32", "4")
        assert (r["objective"], r["model_opt.latent"], r["model_opt.pixels"], r["iwae_k"], r["track_variance"]) == \
            ("elbo", "8", "64", "5", "20")
        for k in ("test_elbo", "test_iwae_5", "train_elbo", "train_loss_ema", "grad_variance", "ms_per_step"):
            assert np.isfinite(float(r[k])), k
        assert float(r["test_iwae_5"]) > float(r["test_elbo"])   # the tighter bound
    # the bounds are those of the saved parameters: IWAE-5 on the test rows, the ELBO of 5 draws on the training rows
    from ppl.models import sbn
    d = sbn.data()
    for r in (rows[0], rows[3]):
        prog = sbn.build(latent=(8,)).compile(estimators="score", samples=4, dtype=np.float32)
        prog.load(tmp_path / "params" / f"{r['estimator']}_seed{r['seed']}.npz")
        assert float(r["test_iwae_5"]) == pytest.approx(prog.evaluate(d["test"], "iwae", samples=5), rel=1e-9)
        assert float(r["train_elbo"]) == pytest.approx(prog.evaluate(d["train"], "elbo", samples=5), rel=1e-9)
        assert float(r["test_elbo"]) == pytest.approx(sbn.evaluate(prog, d)["test_elbo"], rel=1e-9)
    # summary.csv: the mean and sd over the seeds; the LaTeX table prints the same means
    summary = _csv(tmp_path / "summary.csv")
    assert [s["estimator"] for s in summary] == ["score", "disarm"] and [s["seeds"] for s in summary] == ["2", "2"]
    tex = (tmp_path / "compare.tex").read_text()
    assert tex.count(r"\midrule") == 1 and r"$\pm$" in tex and "test\\_elbo" in tex
    for s, spec in zip(summary, ("score", "disarm")):
        per = [float(r["test_iwae_5"]) for r in rows if r["estimator"] == spec]
        assert float(s["test_iwae_5_mean"]) == pytest.approx(np.mean(per), rel=1e-12)
        assert float(s["test_iwae_5_sd"]) == pytest.approx(np.std(per, ddof=1), rel=1e-9)
        line = next(ln for ln in tex.splitlines() if ln.startswith(spec + " &"))
        assert float(line.split("&")[4].split("$")[0]) == pytest.approx(np.mean(per), rel=1e-5)
    assert (tmp_path / "compare.md").read_text().startswith("| estimator | test_elbo, higher is better")
    # the gradient variance along training: every 20 steps from step 0 to the last, per layer of parameters
    var = _csv(tmp_path / "variance.csv")
    for spec in ("score", "disarm"):
        for seed in ("0", "1"):
            mine = [v for v in var if v["estimator"] == spec and v["seed"] == seed]
            assert sorted({int(v["step"]) for v in mine}) == [0, 20, 40]
            assert {"q1", "p0"} <= {v["layer"] for v in mine}
            assert all(float(v["var"]) > 0 and float(v["se"]) >= 0 for v in mine)
    if PLOTS:
        for name in ("variance.png", "training.png", "heldout.png"):
            assert (tmp_path / name).stat().st_size > 1000, name


def test_compare_without_a_bound_reports_the_training_loss(capsys, tmp_path):
    """A model with hand-written costs has no IWAE bound: no IWAE column, the train objective is
    the training loss's EMA, and compare.csv leaves the bounds empty."""
    code, out = _run(capsys, "compare", "toy_bernoulli", "--estimators", "score,enumerate", "--steps", "20",
                     "--seeds", "2", "--grad-draws", "5", "--eval-points", "0", "-q", "--out", str(tmp_path))
    assert code == 0
    head = next(ln for ln in out.splitlines() if ln.startswith("| estimator"))
    assert "IWAE" not in head and "final training loss (EMA" in head
    rows = _csv(tmp_path / "compare.csv")
    assert len(rows) == 4 and "test_iwae_100" not in rows[0]
    assert all(r["train_elbo"] == "" and float(r["train_loss_ema"]) > 0 for r in rows)
    assert all(r["model_opt.t"] == "0.501" and r["iwae_k"] == "100" for r in rows)
    summary = _csv(tmp_path / "summary.csv")
    assert list(summary[0])[:6] == ["estimator", "exact_objective_mean", "exact_objective_sd", "seeds",
                                    "grad_variance", "ms_per_step"]
    assert not (tmp_path / "variance.csv").exists() and not (tmp_path / "compare.tex").exists()


def test_bad_counts_are_usage_errors(capsys):
    for argv, said in ((("--iwae-k", "-1"), "--iwae-k must be >= 0"),
                       (("--track-variance", "0"), "--track-variance must be >= 1"),
                       (("--format", "html"), "invalid choice: 'html'")):
        with pytest.raises(SystemExit) as e:
            main(["compare", "toy_bernoulli", "--estimators", "score", *argv])
        assert e.value.code == 2 and said in capsys.readouterr().err


def test_latex_cells_are_escaped():
    from ppl.cli_compare import _tex
    assert _tex("score:baseline=loo,h_1 & 5% ± #") == r"score:baseline=loo,h\_1 \& 5\% $\pm$ \#"


@pytest.mark.skipif(not PLOTS, reason="matplotlib (the plot extra) is not installed")
def test_variance_figure_of_many_layers_sums_them(tmp_path):
    from ppl.training.runs import MAX_PANELS, plot_variance
    steps = np.array([0, 10, 100, 1000])
    rec = {"step": steps, "draws": 50,
           "layers": {f"q{i}": {"var": np.exp(-steps / 500) + i, "se": np.full(4, 0.1)} for i in range(MAX_PANELS + 1)}}
    runs = {"score": [{"variance": rec}, {"variance": rec}], "disarm": [{"variance": None}]}
    assert plot_variance(tmp_path / "v.png", runs, "synthetic")
    assert (tmp_path / "v.png").stat().st_size > 1000
    assert not plot_variance(tmp_path / "none.png", {"score": [{"variance": None}]}, "no record")
