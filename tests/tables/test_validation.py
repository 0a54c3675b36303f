"""Bad input gets a ppl.ModelError naming the argument or node, the problem and the fix, at
compile time or at the call (never a numba typing error, a raw Python error, a silent
truncation or a NaN output); NaN and inf in a distribution's parameters raise in the step,
naming the node, in every lowering and on the CUDA target (simulator), instead of vanishing into
a hard sample; checkpoints that do not fit leave the program unchanged."""
import os
import re

import numba
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Categorical, Model, ModelError, Normal
from ppl.training.fit import fit, load_checkpoint
from ppl.lowering import named_source
from ppl.training.optim import SGD, Adam

X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def _small(name="val_small"):
    with Model(name) as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        m.cost("rec", ppl.bernoulli_nll(Affine(h, 2, name="dec"), target=x))
        m.cost("lq", ppl.log_prob(h))
    return m


@pytest.fixture(scope="module")
def small():
    return _small()


@pytest.fixture(scope="module")
def prog(small):
    return small.compile(dtype=np.float64, estimators="score", lowering="arrays")


# --------------------------------------------------------------------------- estimator options
@pytest.mark.parametrize("est", ["concrete", "straight_through", "rebar"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "0.5", True])
def test_temperature_must_be_finite_and_positive(small, est, bad):
    with pytest.raises(ModelError, match=rf"Bernoulli 'h': {est} option temperature must be"):
        small.compile(estimators={"h": (est, {"temperature": bad})})


@pytest.mark.parametrize("bad", [float("nan"), float("-inf"), None, False])
def test_rebar_eta_must_be_finite(small, bad):
    with pytest.raises(ModelError, match=r"Bernoulli 'h': rebar option eta must be"):
        small.compile(estimators={"h": ("rebar", {"eta": bad})})


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan")])
def test_score_decay_in_unit_interval(small, bad):
    with pytest.raises(ModelError, match=r"Bernoulli 'h': score option decay .* must be"):
        small.compile(estimators={"h": ("score", {"baseline": "moving_average", "decay": bad})})


@pytest.mark.parametrize("bad", ["mean", 3])
def test_score_baseline_names(small, bad):
    with pytest.raises(ModelError, match=r"Bernoulli 'h': .*baseline must be"):
        small.compile(estimators={"h": ("score", {"baseline": bad})})


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "16"])
def test_relax_hidden_positive_int(small, bad):
    with pytest.raises(ModelError, match=r"Bernoulli 'h': relax option hidden"):
        small.compile(estimators={"h": ("relax", {"hidden": bad})})


def test_unknown_option_still_errors(small):
    with pytest.raises(ModelError, match=r"Bernoulli 'h': estimator 'concrete' has no option\(s\) tau"):
        small.compile(estimators={"h": ("concrete", {"tau": 0.5})})


# --------------------------------------------------------------------------- sizes and counts
@pytest.mark.parametrize("bad", [0, 1.5, True, "2", None])
def test_samples_is_a_positive_int(small, bad):
    with pytest.raises(ModelError, match=r"compile: samples"):
        small.compile(samples=bad)


def test_widths_and_classes_are_ints():
    with Model("val_widths") as m:
        with pytest.raises(ModelError, match=r"input 'x': width must be an integer"):
            m.input("x", 2.5)
        with pytest.raises(ModelError, match=r"input 'x': width must be an integer"):
            m.input("x", True)
        x = m.input("x", 4)
        with pytest.raises(ModelError, match=r"Affine 'a': out must be >= 1"):
            Affine(x, 0, name="a")
        with pytest.raises(ModelError, match=r"Affine 'a': out must be an integer"):
            Affine(x, 3.5, name="a")
        with pytest.raises(ModelError, match=r"Categorical 'c': classes must be an integer"):
            Categorical("c", logits=x, classes=2.5)
        with pytest.raises(ModelError, match=r"param 'p': width must be >= 1"):
            ppl.param("p", 0)


def test_batch_and_step_are_ints(prog):
    with pytest.raises(ModelError, match=r"batch must be an integer"):
        prog.loss({"x": X}, batch=2.5)
    with pytest.raises(ModelError, match=r"step must be an integer"):
        prog.loss({"x": X}, step=1.5)
    with pytest.raises(ModelError, match=r"step must be >= 0"):
        prog.loss({"x": X}, step=-1)


def test_fit_counts_are_ints(prog):
    for kw, name in (({"steps": 2.5}, "steps"), ({"steps": 2, "batch_size": 1.5}, "batch_size"),
                     ({"steps": 2, "eval_every": True}, "eval_every"), ({"epochs": 0}, "epochs")):
        with pytest.raises(ModelError, match=rf"fit: {name}"):
            fit(prog, {"x": X}, SGD(0.01), progress=False, **kw)


# --------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("bad", [1.5, 1.0, True, -1, 2 ** 63, "3", np.float64(2)])
def test_seed_is_an_int_in_range(prog, small, bad):
    theta = prog.theta.copy()
    for call in (prog.grad, prog.loss, prog.sample, prog.loss_parts):
        with pytest.raises(ModelError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
            call({"x": X}, seed=bad)
    with pytest.raises(ModelError, match=r"compile: seed must be an integer"):
        small.compile(seed=bad)
    with pytest.raises(ModelError, match=r"fit: seed must be an integer"):
        fit(prog, {"x": X}, SGD(0.01), steps=1, seed=bad, progress=False)
    np.testing.assert_array_equal(prog.theta, theta)


def test_seed_extremes_and_numpy_ints_work(prog):
    a = prog.loss({"x": X}, seed=np.int64(7))
    assert a == prog.loss({"x": X}, seed=7)
    assert np.isfinite(prog.loss({"x": X}, seed=2 ** 63 - 1))


# --------------------------------------------------------------------------- black boxes
@numba.njit
def _bb_array(r):
    return r * 2.0


@numba.njit
def _bb_ok(r):
    return np.sum(r * r)


@numba.njit
def _bb_two(a, b):
    return a[0] + b[0]


@numba.njit
def _bb_grad_bad(r, g):
    g[0] = r.foo


@numba.njit
def _bb_grad_ok(r, g):
    g[:] = 2.0 * r


def _bb_model(fn, grad=None, name="val_bb"):
    with Model(name) as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        m.cost("sim", ppl.blackbox(fn, [h], grad=grad))
    return m


def test_blackbox_returning_an_array_is_refused_at_compile_time():
    with pytest.raises(ModelError, match=r"black box 'sim': fn returns array\(float64, 1d, C\) .* one number per row"):
        _bb_model(_bb_array).compile(dtype=np.float64)
    with pytest.raises(ModelError, match=r"black box 'sim': fn returns array\(float64, 1d, C\) for 1D float32 rows"):
        _bb_model(_bb_array).compile(dtype=np.float32)


def test_blackbox_signature_is_checked():
    with pytest.raises(ModelError, match=r"black box 'sim': fn takes 2 argument\(s\) but is called with 1"):
        _bb_model(_bb_two).compile(dtype=np.float64)
    with pytest.raises(ModelError, match=r"black box 'sim': grad takes 1 argument\(s\) but is called with 2"):
        _bb_model(_bb_ok, grad=_bb_ok).compile(dtype=np.float64)
    with pytest.raises(ModelError, match=r"black box 'sim': grad does not compile for 2 1D float64 row\(s\)"):
        _bb_model(_bb_ok, grad=_bb_grad_bad).compile(dtype=np.float64)
    p = _bb_model(_bb_ok, grad=_bb_grad_ok).compile(dtype=np.float64, estimators="concrete")
    assert "concrete" in p.explain()   # a black box of the documented signature compiles


# --------------------------------------------------------------------------- data
def test_data_errors_name_the_input(prog):
    with pytest.raises(ModelError, match=r"takes inputs \['x'\]; missing \['x'\]"):
        prog.loss({"y": X})
    with pytest.raises(ModelError, match=r"unknown \['y'\]"):
        prog.loss({"x": X, "y": X})
    with pytest.raises(ModelError, match=r"input 'x' must have shape \(batch, 2\)"):
        prog.loss({"x": np.ones((3, 3))})
    with pytest.raises(ModelError, match=r"input 'x' has dtype <U1"):
        prog.loss({"x": np.array([["a", "b"]])})
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[1, 0] = bad
        with pytest.raises(ModelError, match=r"input 'x' has non-finite values"):
            prog.grad({"x": Xb})


# --------------------------------------------------------------------------- checkpoints
def _snapshot(p):
    return p.theta.copy(), p.state.copy()


def _unchanged(p, snap):
    np.testing.assert_array_equal(p.theta, snap[0])
    np.testing.assert_array_equal(p.state, snap[1])


def test_checkpoint_errors_leave_the_program_unchanged(prog, tmp_path):
    good = tmp_path / "good.npz"
    prog.save(good)
    prog.params["enc.b"] = [0.25, -0.5]
    snap = _snapshot(prog)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.npz"
    text.write_text("not a checkpoint\n")
    with np.load(good) as f:
        fields = {k: f[k] for k in f.files}
    version = tmp_path / "version.npz"
    np.savez(version, **{**fields, "format": np.array(99)})
    shapes = tmp_path / "shapes.npz"
    np.savez(shapes, **{**fields, "sizes": fields["sizes"][::-1].copy(), "theta": fields["theta"]})
    nonfinite = tmp_path / "nan.npz"
    np.savez(nonfinite, **{**fields, "theta": np.full_like(fields["theta"], np.nan)})
    other = tmp_path / "other.npz"
    with Model("val_other") as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 3, name="encoder"))
        m.cost("rec", ppl.bernoulli_nll(Affine(h, 2, name="dec"), target=x))
    m.compile(dtype=np.float64, estimators="score", lowering="arrays").save(other)
    cases = [(truncated, "is not a readable ppl checkpoint"), (text, "is not a readable ppl checkpoint"),
             (version, "has format version 99"), (shapes, "have other shapes"), (nonfinite, "non-finite"),
             (other, "a different program"), (tmp_path / "missing.npz", "no such file")]
    for path, why in cases:
        with pytest.raises(ModelError, match=rf"checkpoint {re.escape(str(path))}.*{why}"):
            prog.load(path)
        _unchanged(prog, snap)
        with pytest.raises(ModelError, match=rf"checkpoint {re.escape(str(path))}"):
            load_checkpoint(path, prog, Adam(0.01))
        _unchanged(prog, snap)
    prog.load(good)
    assert not np.array_equal(prog.theta, snap[0])


def test_fit_checkpoint_of_another_optimiser_leaves_program_unchanged(prog, tmp_path):
    ck = tmp_path / "fit.npz"
    snap = _snapshot(prog)
    fit(prog, {"x": X}, Adam(0.01), steps=2, batch_size=3, progress=False, checkpoint=ck)
    after = _snapshot(prog)
    prog.theta[:], prog.state[:] = snap
    opt = SGD(0.01)
    with pytest.raises(ModelError, match=rf"checkpoint {re.escape(str(ck))} holds the state of optimiser 'adam'"):
        load_checkpoint(ck, prog, opt)
    _unchanged(prog, snap)
    assert opt.t == 0
    load_checkpoint(ck, prog, Adam(0.01))
    _unchanged(prog, after)
    prog.theta[:], prog.state[:] = snap


def test_a_failed_save_keeps_the_previous_file(prog, tmp_path, monkeypatch):
    ck = tmp_path / "keep.npz"
    prog.save(ck)
    before = ck.read_bytes()

    def broken(fh, **fields):
        fh.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(ModelError, match=rf"checkpoint {re.escape(str(ck))}: writing failed .*disk full.*previous file"):
        prog.save(ck)
    monkeypatch.undo()
    assert ck.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.npz"]


# --------------------------------------------------------------------------- NaN and inf
ESTIMATORS = {"bernoulli": ("disarm", "arm", "rebar", "relax", "concrete", "straight_through", "enumerate",
                             "score"),
              "probit": ("straight_through", "enumerate", "score"),
              "categorical": ("score", "gumbel_softmax", "straight_through", "enumerate", "relax", "rebar"),
              "normal": ("pathwise", "price", "score")}


def _one_node(kind, est, below_rebar=False):
    with Model(f"val_src_{kind}_{est}") as m:
        x = m.input("x", 2)
        top = x
        if below_rebar:
            top = Bernoulli("top", logits=Affine(x, 2, name="e_top"))
        if kind == "normal":
            z = Normal("z", loc=Affine(top, 1, name="loc"), scale=ppl.softplus(Affine(top, 1, name="s")))
        elif kind == "categorical":
            z = Categorical("z", logits=Affine(top, 3, name="lg"), classes=3)
        else:
            z = Bernoulli("z", logits=Affine(top, 2, name="lg"), link="probit" if kind == "probit" else "logit")
        if kind == "normal":   # elementwise paths, so Price applies too
            m.cost("f", ppl.total(z * z))
        else:
            m.cost("f", ppl.bernoulli_nll(Affine(z, 2, name="dec"), target=x))
        m.cost("lq", ppl.log_prob(z))
    return m, ({"top": "rebar", "z": est} if below_rebar else {"z": est})


def _source(m, ests, samples):
    from ppl.compiler import pipeline as compiler
    from ppl.analysis import graph as G
    an = G.analyse(m)
    choices = compiler.select(m, an, ests, "unbiased", samples, None)
    from ppl.lowering import lower, printer
    return named_source(printer.print_arrays(lower(compiler.ArrayLowering, m, an, choices, samples,
                                                   np.random.default_rng(0)).finish()))


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_every_sampler_reads_checked_parameters(kind):
    """The array lowering (CPU and CUDA run the same body) checks each distribution parameter
    for NaN / inf before the node's estimator draws anything: for every estimator of every
    distribution, with 1 and 2 samples, and below a REBAR node (relaxed control-variate rows)."""
    dist = {"bernoulli": "Bernoulli", "probit": "Bernoulli(probit)", "categorical": "Categorical",
            "normal": "Normal"}[kind]
    params = ["loc", "scale"] if kind == "normal" else ["logits"]
    checked = 0
    for est in ESTIMATORS[kind]:
        for samples, below in ((1, False), (2, False), (1, True)):
            if below and (est in ("relax", "rebar", "price") or kind == "normal" and est == "score"):
                continue
            m, ests = _one_node(kind, est, below)
            try:
                src = _source(m, ests, samples).splitlines()
            except ModelError as e:   # a combination the compiler refuses, with its reason
                assert "'z'" in str(e) or "'top'" in str(e), e
                continue
            # the first line after the workspace tuples are unpacked that reads z's values or noise
            top = max((i for i, ln in enumerate(src) if re.search(r"\) = (ws2|ws1|inputs)$", ln)), default=-1)
            first = min(i for i, ln in enumerate(src) if i > top and re.search(r"\b(v|n\d+)_z\b", ln))
            for pname in params:
                msg = [i for i, ln in enumerate(src) if f"{dist} 'z': {pname} '" in ln and "NaN or inf" in ln]
                assert len(msg) == 1 and msg[0] < first, (est, samples, below, pname)
                assert "all_finite2(" in src[msg[0] - 1], (est, pname)
            checked += 1
    assert checked >= 2 * len(ESTIMATORS[kind])


def _nan_model():
    with Model("val_nan") as m:
        x = m.input("x", 2)
        b = Bernoulli("b", logits=Affine(x, 2, name="e_b"))
        m.cost("c_b", ppl.bernoulli_nll(Affine(b, 2, name="d_b"), target=x))
        p = Bernoulli("p", logits=Affine(x, 1, name="e_p"), link="probit")
        m.cost("c_p", ppl.bernoulli_nll(Affine(p, 2, name="d_p"), target=x))
        c = Categorical("c", logits=Affine(b, 3, name="e_c"), classes=3)
        m.cost("c_c", ppl.bernoulli_nll(Affine(c, 2, name="d_c"), target=x))
        z = Normal("z", loc=Affine(x, 1, name="e_loc"), scale=ppl.softplus(Affine(x, 1, name="e_scale")))
        m.cost("c_z", ppl.gaussian_nll(Affine(z, 2, name="d_z"), ppl.param("sd", 2, init=1.0), target=x))
    return m, {"b": "disarm", "p": "straight_through", "c": "gumbel_softmax", "z": "pathwise"}


NAN_CASES = [("b", "e_b", "Bernoulli", "logits"), ("p", "e_p", r"Bernoulli\(probit\)", "logits"),
             ("c", "e_c", "Categorical", "logits"), ("z", "e_loc", "Normal", "loc"),
             ("z", "e_scale", "Normal", "scale")]


@pytest.fixture(scope="module")
def every_sampler():
    m, ests = _nan_model()
    return m.compile(dtype=np.float64, estimators=ests)


def _poke(p, layer, value, entry=0):
    w = p.params[f"{layer}.b"]
    old = w.copy()
    w[entry] = value
    return lambda: w.__setitem__(slice(None), old)


def test_nan_in_any_distribution_parameter_raises_naming_the_node(every_sampler):
    p = every_sampler
    assert np.isfinite(p.grad({"x": X})[0])
    for node, layer, dist, pname in NAN_CASES:
        for bad in (np.nan, np.inf, -np.inf):
            if pname == "scale" and bad == -np.inf:
                continue   # softplus / exp of -inf is 0: the positivity check names it
            restore = _poke(p, layer, bad)
            want = "has NaN or inf values" if pname != "scale" or not np.isnan(bad) else "has values <= 0 or NaN"
            for call in (p.grad, p.loss):
                with pytest.raises(ModelError, match=rf"{dist} '{node}': {pname} '[^']*'(?: \(= .*\))? {want}"):
                    call({"x": X})
            restore()
    assert np.isfinite(p.grad({"x": X})[0])


def test_nan_in_a_cost_head_gives_a_nan_loss(every_sampler):
    p = every_sampler
    for layer in ("d_b", "d_z", "d_c"):
        restore = _poke(p, layer, np.nan)
        assert np.isnan(p.loss({"x": X})), layer
        loss, g = p.grad({"x": X})
        assert np.isnan(loss) and np.isnan(g[f"{layer}.b"]).any(), layer
        restore()


def _scalar_model():
    with Model("val_nan_scalar") as m:
        x = m.input("x", 1)
        b = Bernoulli("b", logits=Affine(x, 1, name="enc"))
        q = Bernoulli("q", logits=Affine(x, 1, name="encq"), link="probit")
        z = Normal("z", loc=Affine(b, 1, name="loc"), scale=ppl.softplus(Affine(x, 1, name="s")))
        m.cost("f", ppl.total(ppl.tanh(Affine(z, 1, name="dec")) * x + q))
        m.cost("lq", ppl.log_prob(b))
    return m


@pytest.mark.parametrize("ests", [{"b": "disarm", "q": "straight_through", "z": "pathwise"},
                                  {"b": "concrete", "q": ("score", {"baseline": "none"}),
                                   "z": ("score", {"baseline": "moving_average"})}])
def test_nan_raises_in_the_row_fused_lowering(ests):
    p = _scalar_model().compile(dtype=np.float64, estimators=ests, lowering="row-fused")
    assert "row-fused" in p.explain()
    x = np.ones((4, 1))
    assert np.isfinite(p.grad({"x": x})[0])
    for node, layer, dist, pname in (("b", "enc", "Bernoulli", "logits"), ("q", "encq", r"Bernoulli\(probit\)", "logits"),
                                     ("z", "loc", "Normal", "loc"), ("z", "s", "Normal", "scale")):
        for bad in (np.nan, np.inf):
            restore = _poke(p, layer, bad)
            want = "has values <= 0 or NaN" if pname == "scale" and np.isnan(bad) else "has NaN or inf values"
            for call in (p.grad, p.loss):
                with pytest.raises(ModelError, match=rf"{dist} '{node}': {pname} '[^']*'(?: \(= .*\))? {want}"):
                    call({"x": x})
            restore()
    # and from a user's @njit loop through the raw entry point
    restore = _poke(p, "enc", np.nan)
    entry, args = p.entry, p.args({"x": x})

    @numba.njit
    def loop(theta, grad, state, ws2, ws1, inputs, B):
        return entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(1), np.int64(0), 1)
    with pytest.raises(ModelError, match=r"Bernoulli 'b': logits 'enc' has NaN or inf"):
        loop(*args)
    restore()


@pytest.mark.cuda
def test_nan_raises_on_the_cuda_target():
    with Model("val_nan_cuda") as m:
        x = m.input("x", 2)
        b = Bernoulli("b", logits=Affine(x, 2, name="enc"))
        z = Normal("z", loc=Affine(b, 1, name="loc"), scale=ppl.softplus(Affine(x, 1, name="s")))
        m.cost("f", ppl.bernoulli_nll(Affine(z, 2, name="dec"), target=x))
    p = m.compile(dtype=np.float64, estimators={"b": "disarm", "z": "pathwise"}, target="cuda")
    assert np.isfinite(p.grad({"x": X})[0])
    for node, layer, dist, pname in (("b", "enc", "Bernoulli", "logits"), ("z", "loc", "Normal", "loc")):
        p.pull()
        restore = _poke(p, layer, np.nan)
        p.push()
        with pytest.raises(ModelError, match=rf"{dist} '{node}': {pname} '{layer}' has NaN or inf values"):
            p.grad({"x": X})
        restore()
        p.push()
    assert np.isfinite(p.grad({"x": X})[0])


# --------------------------------------------------------------------------- raw errors made ppl's own
def _tiny():
    with Model("tiny_refusals") as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 2, name="e"))
        m.cost("c", ppl.total(h))
        with pytest.raises(ModelError, match=r"'add' with 'h': the constant is nan; give a finite number"):
            h + float("nan")
        with pytest.raises(ModelError, match=r"'mul' with 'h': the constant is inf"):
            h * float("inf")
    return m.compile()


def test_fit_refuses_what_used_to_fail_raw_or_pass_silently(tmp_path):
    prog = _tiny()
    x = np.zeros((5, 2))
    for data, opt, msg in (({"x": np.zeros((0, 2))}, Adam(0.1), r"the data has 0 rows \(x\); give at least one row"),
                           ({"x": x}, "adam", r"fit: optimizer must be a ppl.optim optimiser .*got 'adam' "
                                              r"\(ppl.optim.make\('adam', lr\)"),
                           ({"x": np.array([["1", "0"]] * 5)}, Adam(0.1), r"input 'x' has dtype <U1; .*not strings"),
                           ({"x": np.ones((5, 2), complex)}, Adam(0.1), r"not complex numbers")):
        with pytest.raises(ModelError, match=msg):
            fit(prog, data, opt, steps=2, batch_size=5, progress=False)
    with pytest.warns(UserWarning, match="batch_size 50 is larger than the data's 5 rows: every step takes the 5"):
        fit(prog, {"x": x}, Adam(0.1), steps=2, batch_size=50, progress=False)
    ck = tmp_path / "ck.npz"
    fit(prog, {"x": x}, Adam(0.1), steps=2, batch_size=5, progress=False, checkpoint=ck)
    np.savez(ck, **{k: v for k, v in np.load(ck).items() if not k.startswith("opt.")})
    with pytest.raises(ModelError, match=r"holds no optimiser state \(its step count opt.t is missing\)"):
        fit(prog, {"x": x}, Adam(0.1), steps=4, batch_size=5, progress=False, checkpoint=ck, resume=True)


def test_every_built_in_estimator_name_is_refused_to_a_users_class():
    for name in ("mvd", "arms", "rodeo", "disarm", "score", "stochastic_derivative"):
        cls = type("Mine", (ppl.Estimator,), {"name": name, "estimate": lambda self, ctx: None})
        with pytest.raises(ModelError, match=f"estimator name '{name}' is built in; give Mine another name"):
            ppl.register_estimator(cls)
    assert ppl.estimators["mvd"].__class__.__name__ != "Mine"


def test_predict_with_no_nodes_says_so():
    with Model("predict_empty") as m:
        x, y = m.input("x", 1), m.input("y", 1)
        m.observe("lik", ppl.dist.Normal(Affine(x, 1, name="mu"), 1.0), y)
    with pytest.raises(ModelError, match=r"predict: nodes is empty; name the nodes to draw \(default: .*\['y'\]"):
        m.compile().predict({"x": np.zeros((2, 1))}, nodes=[])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lowering", ["arrays", "row-fused"])
def test_nan_stays_nan_through_every_elementwise_op(dtype, lowering):
    """NaN parameters through every unary op (relu's select included) give a NaN loss, never a
    number; exp of a pre-activation of 800 is inf in float32 as in float64 (no finite clamp), so
    a Normal scale made of it is refused by name in both dtypes."""
    from ppl.ops import OPS
    for kind in [k for k, op in OPS.items() if op.unary]:
        with Model(f"nan_op_{kind}") as m:
            x = m.input("x", 1)
            m.cost("c", ppl.total(ppl.dsl.OP_NODES[kind](Affine(x, 1, name="a"))))
        prog = m.compile(dtype=dtype, lowering=lowering)
        prog.theta[:] = np.nan
        assert np.isnan(prog.loss({"x": np.ones((2, 1))})), kind
    with Model("exp_overflow") as m:
        x = m.input("x", 1)
        z = Normal("z", 0.0, ppl.exp(Affine(x, 1, name="a")))
        m.cost("c", ppl.total(z))
    prog = m.compile(dtype=dtype, lowering=lowering)
    prog.params["a.b"][...] = 800.0
    with pytest.raises(ModelError, match=r"Normal 'z': scale .* (NaN or inf|inf)"):
        prog.loss({"x": np.zeros((2, 1))})


SUPPORT_CASES = [   # (spec, width, good rows, a bad row, the words of the support)
    (lambda: ppl.dist.Poisson(2.0), 1, [[0.0], [3.0]], [2.5], "non-negative integers"),
    (lambda: ppl.dist.Poisson(2.0), 1, [[1.0]], [-1.0], "non-negative integers"),
    (lambda: ppl.dist.Geometric(probs=0.3), 1, [[0.0]], [-2.0], "non-negative integers"),
    (lambda: ppl.dist.Binomial(5, probs=0.3), 1, [[5.0]], [1.5], "non-negative integers"),
    (lambda: ppl.dist.Gamma(2.0, 1.0), 1, [[0.5]], [0.0], "> 0"),
    (lambda: ppl.dist.Exponential(1.0), 1, [[0.5]], [-1.0], "> 0"),
    (lambda: ppl.dist.LogNormal(0.0, 1.0), 1, [[0.5]], [0.0], "> 0"),
    (lambda: ppl.dist.Beta(2.0, 2.0), 1, [[0.5]], [1.0], r"in \(0, 1\)"),
    (lambda: ppl.dist.Bernoulli(logits=0.0), 1, [[1.0], [0.0]], [0.5], "0 or 1"),
    (lambda: ppl.dist.Dirichlet(ppl.const(1.0, 3), classes=3), 3, [[0.2, 0.3, 0.5]], [0.6, 0.6, 0.6],
     "groups of K non-negative values summing to 1"),
    (lambda: ppl.dist.Categorical(logits=ppl.const(0.0, 3), classes=3), 3, [[0, 1, 0]], [1, 1, 0], "one-hot"),
]


@pytest.mark.parametrize("case", range(len(SUPPORT_CASES)))
def test_observed_data_outside_its_likelihoods_support_is_refused_by_name(case):
    spec, width, good, bad, words = SUPPORT_CASES[case]
    with Model(f"support_{case}") as m:
        y = m.input("y", width)
        m.observe("lik", spec(), y)
    prog = m.compile(dtype=np.float64)
    ok = np.array(good * 3, np.float64)
    assert np.isfinite(prog.loss({"y": ok}))
    data = np.vstack([ok, [bad]])
    msg = rf"input 'y' is observed under \w+ \(m.observe\('lik', ...\)\), whose values are {words}.*row {len(ok)}"
    with pytest.raises(ModelError, match=msg):
        prog.loss({"y": data})
    with pytest.raises(ModelError, match=msg):
        fit(prog, {"y": data}, Adam(0.1), steps=1, batch_size=2, progress=False)


def test_binomial_counts_over_their_total_are_refused_by_name():
    """A count over its total_count (a number, or a data input of the same call) has probability 0:
    refused naming the input, the law, the total and the row, in grad and fit."""
    for total in (5.0, "n"):
        with Model(f"binomial_over_{total}") as m:
            k = m.input("k", 1)
            n = m.input("n", 1) if total == "n" else 5.0
            m.observe("lik", ppl.dist.Binomial(n, probs=0.3), k)
        prog = m.compile(dtype=np.float64)
        data = {"k": np.array([[3.0], [5.0], [7.0]])}
        if total == "n":
            data["n"] = np.full((3, 1), 5.0)
        assert np.isfinite(prog.loss({k: v[:2] for k, v in data.items()}))
        msg = (r"input 'k' is observed under Binomial \(m.observe\('lik', ...\)\), whose counts are at most total_count "
               + ("5.0" if total == 5.0 else "'n'") + r"; 1 row\(s\) are over it, e.g. row 2: \[7.\] > ")
        with pytest.raises(ModelError, match=msg):
            prog.loss(data)
        with pytest.raises(ModelError, match=msg):
            fit(prog, data, Adam(0.1), steps=1, batch_size=2, progress=False)


def test_a_fit_non_finite_at_its_first_step_names_the_cost_not_the_learning_rate():
    with Model("nonfinite_first") as m:
        x = m.input("x", 1)
        m.cost("fine", ppl.total(Affine(x, 1, name="b") * 0.0))
        m.cost("logged", ppl.total(ppl.log(Affine(x, 1, name="a"))))
    prog = m.compile(dtype=np.float64)
    prog.params["a.W"][...] = 0.0
    prog.params["a.b"][...] = -5.0                                    # log of a negative number: NaN
    with pytest.raises(ModelError, match=r"non-finite at step 0 \(loss nan; non-finite on that batch: logged\); it "
                                         r"is the first step, before any update: check the data and the initial"):
        fit(prog, {"x": np.ones((4, 1))}, Adam(0.1), steps=3, batch_size=4, progress=False)


def test_a_checkpoint_of_another_models_graph_is_refused(tmp_path):
    """Two models with the same parameter names and shapes but another graph (tanh for sigmoid):
    each refuses the other's checkpoint by name; the same model loads it."""
    def build(act):
        with Model("same_names") as m:
            x = m.input("x", 2)
            h = Bernoulli("h", logits=Affine(x, 2, name="e"))
            m.cost("c", ppl.total(h * act(Affine(x, 2, name="d"))))
        return m.compile()
    a, b = build(ppl.sigmoid), build(ppl.tanh)
    path = tmp_path / "a.npz"
    a.theta[:] = np.arange(a.theta.size)
    a.save(path)
    with pytest.raises(ModelError, match=r"was written by another model's program .*the graph's nodes or their "
                                         r"connections differ"):
        b.load(path)
    assert not np.any(b.theta == np.arange(b.theta.size))        # unchanged
    same = build(ppl.sigmoid)
    same.load(path)
    np.testing.assert_array_equal(same.theta, a.theta)


def test_predict_refuses_draws_that_cannot_fit_in_memory_before_allocating():
    with Model("predict_memory") as m:
        x, y = m.input("x", 1), m.input("y", 1)
        w = m.latent("w", ppl.dist.Normal(0.0, 1.0))
        with m.plate("data", size=3):
            m.observe("lik", ppl.dist.Normal(ppl.rowdot(x, w), 1.0), y)
    prog = m.compile()
    for call in (lambda: prog.predict({"x": np.ones((3, 1))}, "y", num_samples=10 ** 12),
                 lambda: prog.sample_prior(10 ** 6, nodes=["w"], num_samples=10 ** 9)):
        with pytest.raises(ModelError, match=r"predict / sample_prior: \d+ draw\(s\) of \d+ row\(s\) need about .* "
                                             r"GiB .* are free: draw fewer"):
            call()
    assert prog.predict({"x": np.ones((3, 1))}, "y", num_samples=4)["y"].shape == (4, 3, 1)
