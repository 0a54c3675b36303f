"""ppl.scan: a loop compiled as a loop (ppl/language/scan.py, ppl/lowering/loops.py).

Oracles: the same model unrolled step by step in Python (the same parameter nodes), which the
compiler lowers without loops. A deterministic body gives the unrolled step's loss and gradient
to rounding (the carry's cotangent through the steps, xs and the stacked outputs); a random body
is checked for unbiasedness against tests/exact.py on the unrolled model (every Bernoulli node
enumerated, central differences), with tests/stats.py's projection ratio and its standard error:
`stats.assert_unbiased_tuned` sizes the draws for a ratio SE of about 0.8% and requires the
estimates scaled by 1.05 and 0.95 to fail, so each case detects a 5% bias.
"""
import re

import numpy as np
import pytest

import ppl
from ppl import Model

import exact
import stats
from small_models import last_carry

S0 = np.array([[0.5], [-1.0]])


def scanned_or_unrolled(m, body, s0, xs, T, scanned):
    """`body` run over xs's T columns by ppl.scan, or unrolled step by step in Python; then a cost
    on the last carry and one on the stacked outputs."""
    if scanned:
        last, ys = ppl.scan(body, s0, xs=xs)
    else:
        s, outs = s0, []
        for t in range(T):
            s, y = body(s, xs[:, t])
            outs.append(y)
        last, ys = s, ppl.concat(outs)
    m.cost("end", ppl.total(last * last))
    m.cost("ys", ppl.total(ppl.rowsum(ys * ys) * 0.01))


def deterministic(name, T, scanned):
    """s_t = tanh(a s_{t-1} + b x_t), cost per step 0.5 s_t^2, and one on the stacked s's."""
    with Model(name) as m:
        s0 = m.input("s0", 1)
        xs = m.input("xs", T)
        a, b = ppl.param("a", 1, 0.7), ppl.param("b", 1, 0.4)

        def body(s, x):
            s = ppl.tanh(a * s + b * x)
            m.cost("c" if scanned else f"c{len(m.costs)}", ppl.total(0.5 * (s * s)))
            return s, 2.0 * s

        scanned_or_unrolled(m, body, s0, xs, T, scanned)
    return m


def test_a_deterministic_scan_is_its_unrolled_step():
    T = 7
    rng = np.random.default_rng(0)
    data = {"s0": S0, "xs": rng.normal(size=(2, T))}
    progs = [deterministic(f"det_{k}", T, k).compile(dtype=np.float64) for k in (True, False)]
    (l1, g1), (l2, g2) = (p.grad(data, seed=0) for p in progs)
    assert abs(l1 - l2) < 1e-12 * abs(l2)
    for k in g2:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-11, atol=1e-14)
    parts = [p.loss_parts(data, seed=0) for p in progs]
    assert abs(parts[0]["c"] - sum(v for k, v in parts[1].items() if k.startswith("c"))) < 1e-12

    # the loop's per-step storages are records of the layout (rows, steps), not text to split
    layout = progs[0].layout
    steps = [rows for _, rows, _ in layout.ws2] + [rows for _, rows in layout.ws1]
    assert any(isinstance(r, tuple) and r.steps == T for r in steps)
    assert not any(isinstance(r, str) and "*" in r for r in steps)

def invariant(name, T, scanned):
    """A body whose values partly do not change from step to step: softplus(a) and the constants
    (computed once, before the loop), a cost on one of them declared in the body (paid at every
    step), an output that is one of them, and a carry that reads them."""
    with Model(name) as m:
        s0 = m.input("s0", 1)
        xs = m.input("xs", T)
        a, b = ppl.param("a", 1, 0.3), ppl.param("b", 1, 0.6)

        def body(s, x):
            g = ppl.softplus(a) * 2.0
            m.cost("reg" if scanned else f"reg{len(m.costs)}", ppl.total(g * g))
            s = ppl.tanh(g * s + b * x)
            m.cost("c" if scanned else f"c{len(m.costs)}", ppl.total(0.5 * (s * s)))
            return s, g

        scanned_or_unrolled(m, body, s0, xs, T, scanned)
    return m


def test_a_value_the_same_at_every_step_is_computed_once_and_its_costs_paid_at_every_step():
    """ppl/language/scan.py, Loop.hoists: softplus(a) * 2 and the constants made in the
    body are nodes outside it (computed before the loop); the cost declared on them in the body,
    its head, and the output are in the body. Oracle: the unrolled model (every node outside a
    loop), loss, loss parts and gradient to rounding. Test of the test: a cost paid once instead
    of at every step would make the parts' 'reg' 1/T of the unrolled sum (T = 5)."""
    T = 5
    rng = np.random.default_rng(1)
    data = {"s0": S0, "xs": rng.normal(size=(2, T))}
    scanned, unrolled = invariant("inv_scan", T, True), invariant("inv_unrolled", T, False)
    body = {n.kind for n in scanned.loops[0].body}
    assert "softplus" not in body and "const" not in body and "total" in body, body
    progs = [mdl.compile(dtype=np.float64) for mdl in (scanned, unrolled)]
    (l1, g1), (l2, g2) = (p.grad(data, seed=0) for p in progs)
    assert abs(l1 - l2) < 1e-12 * abs(l2)
    for k in g2:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-11, atol=1e-14)
    parts = [p.loss_parts(data, seed=0) for p in progs]
    reg = sum(v for k, v in parts[1].items() if k.startswith("reg"))
    assert abs(parts[0]["reg"] - reg) < 1e-12 * reg and abs(reg / T - parts[0]["reg"]) > 0.5 * reg


def walk(name, T, scanned):
    """A walk whose up-probability depends on the state: up_t ~ Bernoulli(sigmoid(w s + b)),
    s_t = s_{t-1} + 2 up_t - 1; a cost per step and one on the final state."""
    with Model(name) as m:
        s0 = m.input("s0", 1)
        w, b = ppl.param("w", 1, -0.4), ppl.param("b", 1, 0.3)

        def body(s, t):
            up = ppl.Bernoulli("up" if scanned else f"up{len(m.costs)}", logits=w * s + b)
            s = s + 2.0 * up - 1.0
            m.cost("c" if scanned else f"c{len(m.costs)}", ppl.total(0.1 * (s * s)))
            return s, None

        last = last_carry(body, s0, T, scanned)
        m.cost("end", ppl.gaussian_nll(last, ppl.const(1.0, 1), ppl.const(2.0, 1)))
    return m


@pytest.mark.parametrize("est, rows", [("score", 1), ("disarm", 7), ("mvd", 7), (("arms", {"n": 3}), 13),
                                       ("stochastic_derivative", 3)])
def test_a_random_walk_in_a_scan_is_unbiased(est, rows):
    T = 6
    m = walk(f"walk_scan_{est if isinstance(est, str) else est[0]}", T, True)
    prog = m.compile(dtype=np.float64, estimators={"up": est}, seed=1)
    assert prog.rows_per_data_row == rows
    text = " ".join(prog.explain().split())
    assert "up[0..5]" in text and f"rows per data row: {rows}" in text
    P = exact.model_params(prog)
    oracle = walk("walk_unrolled", T, False)
    e = stats.flat(exact.gradient(oracle, P, {"s0": S0}), list(P))
    r, _ = stats.assert_unbiased_tuned(prog, {"s0": S0}, list(P), e, f"scan walk, {est}")
    assert r.detectable < 0.05


def test_the_step_does_not_grow_with_the_length():
    sources = [walk(f"walk_len{T}", T, True).compile(dtype=np.float64, estimators="score").source for T in (10, 1000)]
    short, long = (re.sub(r"\d+", "N", s.replace(f"walk_len{T}", "walk")) for s, T in zip(sources, (10, 1000)))
    assert long == short   # the same lines: only numbers (the length, the per-step state's size) differ


def test_scan_errors_name_the_problem():
    with Model("bad") as m:
        s0 = m.input("s0", 1)
        with pytest.raises(ppl.ModelError, match="give length="):
            ppl.scan(lambda s, x: (s, None), s0)
        with pytest.raises(ppl.ModelError, match="scans do not nest"):
            ppl.scan(lambda s, x: (ppl.scan(lambda c, y: (c, None), s, length=2)[0], None), s0, length=3)
        with pytest.raises(ppl.ModelError, match=r"carry 0 \('.*'\) has width 2 but init 's0' has width 1"):
            ppl.scan(lambda s, x: (ppl.concat([s, s]), None), s0, length=3)
        with pytest.raises(ppl.ModelError, match="declare inputs outside the scan"):
            ppl.scan(lambda s, x: (s + m.input("z", 1), None), s0, length=3)
        with pytest.raises(ppl.ModelError, match="not a multiple of length=2"):
            ppl.scan(lambda s, x: (s, None), s0, xs=m.input("xs", 3), length=2)
    with Model("leak") as m:
        s0 = m.input("s0", 1)
        inner = []

        def body(s, x):
            inner.append(s + 1.0)
            return inner[-1], None
        ppl.scan(body, s0, length=3)
        m.cost("c", ppl.total(inner[0] * inner[0]))
    with pytest.raises(ppl.ModelError, match=r"reads '.*', a node of the body of ppl.scan 'scan_1', from outside"):
        m.compile()


def mixed(name, T, scanned):
    """A carry of two nodes: a Normal state z_t ~ N(a z_{t-1} + c b_{t-1}, 0.5) (pathwise) and a
    Bernoulli flag b_t ~ Bernoulli(sigmoid(w z_t)) (DisARM); the flags' steps stacked into a cost."""
    with Model(name) as m:
        z0 = m.input("zi", 1)
        a, c, w = ppl.param("a", 1, 0.8), ppl.param("c", 1, 0.5), ppl.param("w", 1, 1.2)

        def body(carry, t):
            z, b = carry
            k = "" if scanned else str(len(m.costs))
            z = ppl.Normal(f"z{k}", a * z + c * b, 0.5)
            b = ppl.Bernoulli(f"b{k}", logits=w * z)
            m.cost(f"c{k}", ppl.total(0.5 * ((z - 1.0) * (z - 1.0))))
            return (z, b), b

        if scanned:
            (zl, bl), bs = ppl.scan(body, (z0, 0.0 * z0), length=T)
        else:
            carry, outs = (z0, 0.0 * z0), []
            for t in range(T):
                carry, y = body(carry, None)
                outs.append(y)
            (zl, bl), bs = carry, ppl.concat(outs)
        m.cost("flags", ppl.total(0.3 * ppl.rowsum(bs)))
        m.cost("end", ppl.total(zl * bl))
    return m


def test_a_tuple_carry_with_pathwise_and_disarm_nodes_is_unbiased():
    T = 3
    prog = mixed("mixed_scan", T, True).compile(dtype=np.float64, estimators={"z": "pathwise", "b": "disarm"})
    assert prog.rows_per_data_row == 1 + T
    P = exact.model_params(prog)
    e = stats.flat(exact.gradient(mixed("mixed_unrolled", T, False), P, {"zi": S0}), list(P))
    r, _ = stats.assert_unbiased_tuned(prog, {"zi": S0}, list(P), e, "scan: pathwise Normal and DisARM carry")
    assert r.detectable < 0.05


@pytest.mark.cuda
def test_a_scan_runs_on_the_cuda_target():
    """The CUDA step is the same body bound to the CUDA launchers: its loop block runs them per step."""
    T = 4
    rng = np.random.default_rng(1)
    data = {"s0": S0, "xs": rng.normal(size=(2, T))}
    cpu = deterministic("det_cpu", T, True).compile(dtype=np.float64)
    gpu = deterministic("det_gpu", T, True).compile(dtype=np.float64, target="cuda")
    (l1, g1), (l2, g2) = cpu.grad(data, seed=0), gpu.grad(data, seed=0)
    assert abs(l1 - l2) < 1e-10 * abs(l1)
    for k in g1:
        np.testing.assert_allclose(g2[k], g1[k], rtol=1e-9)


@pytest.mark.cuda
def test_a_state_value_of_each_step_on_the_cuda_target():
    """An estimator's one-number state in a scan's body (ReinMax's temperature, the member in force
    of `candidates`) is a number per step: the CUDA step binds each step's at the top of the step,
    as the CPU step does, in a loop of one step too; the same loss and gradient as the CPU step's."""
    data = {"s0": S0}
    for T, est in ((1, "reinmax"), (3, ("candidates", {"among": ("mvd", "disarm"), "chosen": 1}))):
        spec = {"up": est}
        cpu = walk(f"state_walk{T}", T, True).compile(dtype=np.float64, estimators=spec, seed=1)
        gpu = walk(f"state_walk{T}", T, True).compile(dtype=np.float64, estimators=spec, seed=1, target="cuda")
        assert sum(size for name, _, size, _ in gpu.layout.state if not name.startswith("baseline")) == T
        (l1, g1), (l2, g2) = cpu.grad(data, seed=2), gpu.grad(data, seed=2)
        assert abs(l1 - l2) < 1e-10 * abs(l1)
        for k in g1:
            np.testing.assert_allclose(g2[k], g1[k], rtol=1e-9, atol=1e-14, err_msg=f"{est}: {k}")


def outputs(name, T, scanned):
    """A walk whose per-step flags leave the loop as its outputs and pay a cost there (the
    alternative row of stochastic derivatives must restart the earlier steps' outputs too)."""
    with Model(name) as m:
        s0 = m.input("s0", 1)
        w, b = ppl.param("w", 1, -0.4), ppl.param("b", 1, 0.3)

        def body(s, t):
            up = ppl.Bernoulli("up" if scanned else f"up{len(m.nodes)}", logits=w * s + b)
            return s + 2.0 * up - 1.0, up

        if scanned:
            last, ups = ppl.scan(body, s0, length=T)
        else:
            last, outs = s0, []
            for t in range(T):
                last, y = body(last, None)
                outs.append(y)
            ups = ppl.concat(outs)
        weights = ppl.const(1.0, T) * ppl.param("v", T, np.linspace(-1, 1, T))
        m.cost("flags", ppl.total(ppl.rowsum(ups * weights) * ppl.rowsum(ups) * 0.2))
        m.cost("end", ppl.total(0.3 * (last * last)))
    return m


@pytest.mark.parametrize("est", ["stochastic_derivative", "disarm"])
def test_outputs_read_after_the_loop_are_unbiased(est):
    T = 5
    prog = outputs(f"outputs_{est}", T, True).compile(dtype=np.float64, estimators={"up": est}, seed=1)
    P = exact.model_params(prog)
    e = stats.flat(exact.gradient(outputs("outputs_unrolled", T, False), P, {"s0": S0}), list(P))
    r, _ = stats.assert_unbiased_tuned(prog, {"s0": S0}, list(P), e, f"scan outputs, {est}")
    assert r.detectable < 0.05


def counts(name, T, scanned):
    """Each step a Bernoulli by probability and a Binomial count (total 2) whose probability the
    carry moves, a Geometric count of the failures before it: the laws of counts in a scan."""
    with Model(name) as m:
        s0 = m.input("s0", 1)
        a, c = ppl.param("a", 1, 0.3), ppl.param("c", 1, -0.2)

        def body(s, t):
            k = "" if scanned else str(len(m.costs))
            b = ppl.Bernoulli(f"b{k}", probs=ppl.sigmoid(a + 0.3 * s))
            n = ppl.Binomial(f"n{k}", 2.0, probs=ppl.sigmoid(c * s + b))
            g = ppl.Geometric(f"g{k}", logits=1.5 + a * n)
            m.cost(f"cost{k}", ppl.total(0.2 * (s * s) + 0.1 * g))
            return 0.5 * s + n - 1.0, None

        last = last_carry(body, s0, T, scanned)
        m.cost("end", ppl.total(last * last))
    return m


@pytest.mark.parametrize("est", ["score", "stochastic_derivative", "mvd"])
def test_the_count_laws_in_a_scan_are_unbiased(est):
    T = 2
    prog = counts(f"counts_{est}", T, True).compile(dtype=np.float64, estimators=est, seed=1)
    P = exact.model_params(prog)
    e = stats.flat(exact.gradient(counts("counts_unrolled", T, False), P, {"s0": S0}), list(P))
    r, _ = stats.assert_unbiased_tuned(prog, {"s0": S0}, list(P), e, f"scan of count laws, {est}")
    assert r.detectable < 0.05


def moves(name, T, scanned):
    """A walk of three moves (down, stay, up) drawn from a Categorical whose logits depend on the
    state; a cost per step and one on the final state."""
    with Model(name) as m:
        s0 = m.input("s0", 1)
        w, c = ppl.param("w", 3, np.array([-0.5, 0.1, 0.4])), ppl.param("c", 3, np.array([0.2, -0.1, 0.0]))
        d = ppl.param("d", 3, np.array([-1.0, 0.0, 1.0]))

        def body(s, t):
            mv = ppl.Categorical("mv" if scanned else f"mv{len(m.costs)}", logits=w * s + c, classes=3)
            s = ppl.tanh(s + ppl.rowsum(mv * d))
            m.cost("c" if scanned else f"c{len(m.costs)}", ppl.total(0.3 * (s * s)))
            return s, None

        last = last_carry(body, s0, T, scanned)
        m.cost("end", ppl.gaussian_nll(last, ppl.const(0.5, 1), ppl.const(1.0, 1)))
    return m


def test_a_categorical_walk_in_a_scan_is_unbiased_with_categorical_disarm():
    """Categorical DisARM's pair row sits at its step's place in the shared digit (an offset that
    moves with the step)."""
    T = 3
    prog = moves("moves_cat_disarm", T, True).compile(dtype=np.float64, estimators={"mv": "cat_disarm"}, seed=1)
    assert prog.rows_per_data_row == 1 + T
    P = exact.model_params(prog)
    e = stats.flat(exact.gradient(moves("moves_unrolled", T, False), P, {"s0": S0}), list(P))
    r, _ = stats.assert_unbiased_tuned(prog, {"s0": S0}, list(P), e, "scan of categorical moves, cat_disarm")
    assert r.detectable < 0.05


def test_a_scan_inside_a_plate_with_a_global_latent():
    """A global latent drawn outside the plate (once per step and sample, shared by the rows) read
    by every step of a per-row scan in the plate. Oracle: the unrolled model without the plate,
    its per-row costs weighted N (the plate's objective: the expectation is linear in the
    per-row terms, so sharing the global draw does not change it, tests/language/test_plates.py)."""
    T, N = 3, 4000   # N >= the tuned tile's rows (at most 2 x 2000): a batch subsamples the plate

    def build(name, scanned):
        with Model(name) as m:
            s0 = m.input("s0", 1)
            u = ppl.Bernoulli("u", logits=ppl.param("q", 1, 0.4))
            m.cost("lpu", ppl.log_prob(u))
            w = ppl.param("w", 1, 0.2)

            def body(s, t):
                k = "" if scanned else str(len(m.costs))
                up = ppl.Bernoulli(f"up{k}", logits=w * s + u)
                s = s + up
                m.cost(f"c{k}", ppl.total((0.3 if scanned else 0.3 * N) * (s - 1.0) * (s - 1.0)))
                return s, None
            if scanned:
                with m.plate("data", size=N):
                    ppl.scan(body, s0, length=T)
            else:
                s = s0
                for t in range(T):
                    s, _ = body(s, None)
        return m

    prog = build("plate_scan", True).compile(dtype=np.float64, estimators="score", seed=1)
    assert prog.analysis.global_nodes == {prog.model.nodes["u"]}
    P = exact.model_params(prog)
    e = stats.flat(exact.gradient(build("plate_unrolled", False), P, {"s0": S0}), list(P))
    r, _ = stats.assert_unbiased_tuned(prog, {"s0": S0}, list(P), e, "scan in a plate, a global latent")
    assert r.detectable < 0.05


def test_the_readme_simulation_runs():
    """README's "Simulations" block, as written: the explain table names the body's node once,
    with its steps, and the gradient is finite."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = text.split("## Simulations: loops with `ppl.scan`", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    env = {}
    exec(code.replace("print(prog.explain())", "text = prog.explain()"), env)
    assert "up[0..999]" in env["text"] and "score" in env["text"]
    assert np.isfinite(env["loss"]) and np.all(np.isfinite(env["grads"]["w"]))
    assert env["ups"].width == 1000


@pytest.mark.cuda
def test_a_check_in_a_scans_body_raises_on_the_cuda_target():
    """A check in a loop block on the CUDA target adds its failing count into its word of the
    step's one read (lowering/printer.py); where the loop block is one kernel (rows.stepped,
    lowering/launches.py) the check counts every step's rows after it: a NaN logit at the steps
    raises the Bernoulli's own error, and the same program trains again once the parameter is
    finite."""
    with Model("scan_check_gpu") as m:
        s0 = m.input("s0", 1)
        w, b = ppl.param("w", 1, -0.4), ppl.param("b", 1, 0.3)

        def body(s, t):
            up = ppl.Bernoulli("up", logits=w * s + b)
            return s + 2.0 * up - 1.0, up

        last, _ = ppl.scan(body, s0, length=3)
        m.cost("end", ppl.total(last * last))
    gpu = m.compile(dtype=np.float64, target="cuda", estimators="disarm")
    assert gpu.source.count(".copy_to_host()") == 1
    lines = gpu.source.splitlines()
    (stepped,) = [k for k, line in enumerate(lines) if "rows.stepped(" in line]
    (check,) = [k for k, line in enumerate(lines) if "rows.all_finite2_into" in line]   # alone or joined
    assert check > stepped and "v_add_1__T" in lines[check] and "sink_" in lines[check]
    assert np.isfinite(gpu.grad({"s0": S0})[0])
    off = next(o for name, o, _, _ in gpu.layout.params if name == "w")
    gpu.pull()
    gpu.theta[off] = np.nan   # past prog.params, which refuses a non-finite value
    gpu.push()
    with pytest.raises(ppl.ModelError, match=r"Bernoulli 'up': logits .* has NaN or inf values"):
        gpu.grad({"s0": S0})
    gpu.theta[off] = -0.4
    gpu.push()
    assert np.isfinite(gpu.grad({"s0": S0})[0])


def test_a_trajectory_is_rows_by_steps_by_width():
    """sample returns a body node as (rows, T, width): step t of row i at [i, t], consistent with
    the carry's recursion and with the stacked outputs (rows, T * width)."""
    T = 7
    with Model("trajectory") as m:
        L0 = m.input("L0", 1)
        s = ppl.param("s", 1, 0.5)

        def step(L, t):
            arrival = ppl.Bernoulli("arr", probs=ppl.const(0.45, 1))
            service = ppl.Bernoulli("dep", probs=s)
            L = ppl.maximum(L + arrival - service, 0.0, name="L")
            m.cost("length", ppl.total(L * (1.0 / T)))
            return L, L
        ppl.scan(step, L0, length=T)
    d = m.compile(dtype=np.float64).sample({"L0": np.full((5, 1), 2.0)}, seed=3)
    L, arr, dep = d["L"], d["arr"], d["dep"]
    assert L.shape == arr.shape == (5, T, 1)
    prev = np.concatenate([np.full((5, 1, 1), 2.0), L[:, :-1]], axis=1)
    np.testing.assert_array_equal(L, np.maximum(prev + arr - dep, 0.0))
    np.testing.assert_array_equal(d["scan_1_ys0"], L[:, :, 0])
    np.testing.assert_array_equal(d["scan_1_last0"], L[:, -1])


def test_values_no_other_step_reads_keep_one_step_in_a_gradient_call():
    """Pass "one step's slot" (lowering/loops.py): a body buffer that no other step and no
    backward step reads is bound to step 0's rows unless the call is forward-only (mode 0, the
    trajectories of `sample`); what the backward reads (a pathwise node's values for its VJPs)
    and the carry's storage (the next step reads it) keep every step; `sample` still returns every
    step. (The gradients of scans under the pass: this file's unbiasedness tests against the
    unrolled models' exact gradients.)"""
    T = 5
    with Model("one_slot") as m:
        x0 = m.input("x0", 1)
        w = ppl.param("w", 1, 0.7)

        def step(x, t):
            z = ppl.Normal("z", loc=ppl.tanh(w * x), scale=ppl.const(0.5, 1))
            u = ppl.Bernoulli("u", probs=ppl.sigmoid(w + 0.0 * x))
            m.cost("c", ppl.total((z - 0.2) * (z - 0.2) + 0.1 * u))
            return 0.5 * x + z, None
        ppl.scan(step, x0, length=T)
    prog = m.compile(dtype=np.float64, estimators={"z": "pathwise", "u": "score"}, seed=2)
    bind = {ln.split(" = ")[0].strip(): ln for ln in prog.source.splitlines() if "__T[" in ln and " = " in ln}
    slot = "(it_ if mode == 0 else 0)"
    assert any(slot in ln for ln in bind.values()), "no buffer bound to one step"
    assert any(slot not in ln and "it_ *" in ln for ln in bind.values()), "every buffer bound to one step"
    data = {"x0": np.full((4, 1), 0.3)}
    d = prog.sample(data, seed=1)
    assert d["z"].shape == (4, T, 1) and np.all(np.std(d["z"], axis=1) > 0)   # every step, not one
    loss0 = prog.loss(data, seed=1)
    prog.grad(data, seed=1)   # a gradient call between: the forward-only call's steps are its own
    assert prog.loss(data, seed=1) == loss0
