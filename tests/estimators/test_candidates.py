"""`candidates` (ppl/estimators/candidates.py): every candidate of a node side by side in one step,
the one in force a number in the program's state.

- Identity: with a member in force whose drawn row is the node's ordinary one (DisARM, mvd), the
  program's loss and gradient equal those of the program with that estimator alone (same seed
  and step: the same draws) to rounding (its sums over rows run over more rows), on stacked
  nodes whose members share one digit.
- Unbiasedness of every member in force, on stacked nodes (Bernoulli -> Bernoulli -> a Normal
  below, pathwise) and beside another estimator: oracle tests/exact.py (enumeration of the
  Bernoulli nodes, Gauss-Hermite over the Normal, central differences), float64; statistic
  tests/stats.py's projection ratio of the estimates on the exact gradient with its standard
  error and the per-entry z, the draws sized for a ratio SE of about 0.8%; the same estimates
  scaled by 1.05 and 0.95 must fail (stats.assert_unbiased: every case detects a 5% bias; the
  smallest detectable, 4 SE, is printed with -s).
- A member whose drawn row is its own (ARMS's coupled draws) is marked by the step.
- Refusals name the node and the member.
"""
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model
from ppl.estimators.candidates import chosen_state, differs_buffer

import exact
import stats

X = np.array([[0.5, -1.0], [-1.0, 0.3]])
AMONG = ("disarm", "score", "mvd")


def stacked(name):
    """x -> h1 (2 Bernoulli units) -> h2 (2 Bernoulli units) -> z (Normal, pathwise); costs on each."""
    with Model(name) as m:
        x = m.input("x", 2)
        h1 = Bernoulli("h1", logits=Affine(x, 2, name="q1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 2, name="q2"))
        z = ppl.Normal("z", loc=Affine(h2, 1, name="qz"), scale=0.7)
        m.cost("rec", ppl.bernoulli_nll(Affine(h1, 2, name="p1"), target=x))
        m.cost("mid", ppl.total(0.5 * (h2 * Affine(h1, 2, name="p2"))))
        m.cost("end", ppl.gaussian_nll(z, ppl.const(0.3, 1), ppl.const(1.0, 1)))
        m.cost("logq", ppl.log_prob(h1))
    return m


def _choose(prog, node, k):
    off = next(o for n, o, _, _ in prog.layout.state if n == chosen_state(node))
    prog.state[off] = k


def _spec(among=AMONG, **nodes):
    return {n: ("candidates", {"among": among}) for n in ("h1", "h2")} | nodes


def test_a_member_in_force_is_the_program_of_that_estimator():
    prog = stacked("cand_same").compile(estimators=_spec(), dtype=np.float64, seed=1)
    assert prog.rows_per_data_row == 1 + (1 + 0 + 2) * 2   # DisARM's partner and mvd's 2 branches, per node
    for k, est in enumerate(AMONG):
        if est == "score":   # its own program draws from the logistic noise: other draws (tested below)
            continue
        lean = stacked("cand_same").compile(estimators={"h1": est, "h2": est}, dtype=np.float64, seed=1)
        for node in ("h1", "h2"):
            _choose(prog, node, k)
        for step in range(3):
            l1, g1 = prog.grad({"x": X}, seed=4, step=step)
            l2, g2 = lean.grad({"x": X}, seed=4, step=step)
            assert l1 == pytest.approx(l2, rel=1e-13)
            for name in lean.model_param_names():   # to rounding: sums over rows of another count
                np.testing.assert_allclose(g1[name], g2[name], rtol=1e-12, atol=1e-14, err_msg=f"{est}: {name}")


CASES = [((0, 2), {}), ((2, 1), {}), ((1, 0), {}),                 # DisARM / mvd / score on stacked nodes
         ((2, None), {"h2": "rebar"}), ((None, 1), {"h1": "arms"})]  # beside another estimator


@pytest.mark.parametrize("chosen,others", CASES)
def test_every_member_in_force_is_unbiased(chosen, others):
    m = stacked(f"cand_unb_{chosen[0]}_{chosen[1]}")
    spec = _spec(**others)
    prog = m.compile(estimators=spec, dtype=np.float64, seed=2)
    for node, k in zip(("h1", "h2"), chosen):
        if k is not None:
            _choose(prog, node, k)
    P = exact.model_params(prog)
    rng = np.random.default_rng(5)
    for k in P:   # away from the initial point: every gradient entry clearly nonzero
        P[k] = P[k] + 0.4 * rng.normal(size=np.shape(P[k]))
        prog.params[k][...] = P[k]
    names = list(P)
    e = stats.flat(exact.gradient(m, P, {"x": X}), names)
    label = " / ".join(AMONG[k] if k is not None else others[n] for n, k in zip(("h1", "h2"), chosen))
    r, _ = stats.assert_unbiased_tuned(prog, {"x": X}, names, e, f"candidates {label}")
    assert r.detectable < 0.05


def test_a_member_with_a_drawn_row_of_its_own_is_marked():
    """ARMS's drawn row is one of its coupled draws, not DisARM's u < p: its buffer marks the drawn
    rows where it differs; DisARM's twin mvd marks none."""
    among = ("disarm", "mvd", "arms")
    prog = stacked("cand_apart").compile(estimators=_spec(among), dtype=np.float64)
    batch = np.tile(X, (50, 1))
    prog.grad({"x": batch})
    _, ws1 = prog.workspace(100)
    names = [n for n, _ in prog.layout.ws1]
    marked = {among[k]: bool(np.any(ws1[names.index(f"{differs_buffer(k)}_h1")]))
              for k in (1, 2) if f"{differs_buffer(k)}_h1" in names}
    assert marked == {"mvd": False, "arms": True}


def test_refusals_name_the_node_and_the_member():
    m = stacked("cand_refused")
    with pytest.raises(ppl.ModelError, match=r"'h1'.*'rebar' cannot share the drawn row"):
        m.compile(estimators=_spec(("disarm", "rebar")))
    with pytest.raises(ppl.ModelError, match=r"'h1'.*chosen must be an index"):
        m.compile(estimators={"h1": ("candidates", {"among": ("disarm",), "chosen": 3})})
    with pytest.raises(ppl.ModelError, match=r"Normal 'z'.*'candidates' does not apply"):
        m.compile(estimators={"z": "candidates"})


def scanned(name, T, checkpoint):
    """A Bernoulli per step of a ppl.scan, gated by the carry, with a per-step cost."""
    with Model(name) as m:
        x = m.input("x", T)

        def step(s, x_t):
            b = Bernoulli("b", logits=Affine(ppl.concat([s, x_t]), 1, name="gate"))
            s2 = ppl.tanh(0.8 * s + x_t - b)
            m.cost("c_step", ppl.total(0.3 * (s2 * s2) + 0.2 * b))
            return s2, None
        ppl.scan(step, m.input("s0", 1), xs=x, length=T, checkpoint=checkpoint)
    return m


def test_in_a_scan_each_member_s_rows_move_with_the_step():
    """In a scan's body the shared digit holds every step's extra rows: the second member's rows
    are its step's, after the first member's (oracle: the program of that member alone, the same
    draws, to rounding); the member in force is a number per step; checkpointed, the program
    equals the unchecked one bit for bit (oracle of tests/language/test_checkpoint.py)."""
    T, spec = 4, {"b": ("candidates", {"among": ("mvd", "disarm")})}
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(0, 1, (5, T)), "s0": rng.normal(0, 1, (5, 1))}
    prog = scanned("cand_scan", T, False).compile(estimators=spec, dtype=np.float64, seed=1)
    lean = scanned("cand_scan", T, False).compile(estimators={"b": "disarm"}, dtype=np.float64, seed=1)
    ck = scanned("cand_scan_ck", T, 2).compile(estimators=spec, dtype=np.float64, seed=1)
    assert "for seg_ in range(" in ck.source and prog.rows_per_data_row == 1 + 2 * T
    off, size = next((o, z) for n, o, z, _ in prog.layout.state if n == chosen_state("b"))
    assert size == T
    for p in (prog, ck):
        p.state[off:off + size] = 1   # disarm, the second member, at every step
    for step in range(2):
        (l1, g1), (l2, g2), (l3, g3) = (p.grad(data, seed=4, step=step) for p in (prog, lean, ck))
        assert l1 == pytest.approx(l2, rel=1e-13) and l1 == l3
        for name in lean.model_param_names():
            np.testing.assert_allclose(g1[name], g2[name], rtol=1e-12, atol=1e-14, err_msg=name)
            assert np.array_equal(g1[name], g3[name]), name
    prog.state[off + 1] = 0   # mvd at step 1: no longer DisARM's gradient (the test of the test)
    assert not np.allclose(prog.grad(data, seed=4)[1]["gate.W"], lean.grad(data, seed=4)[1]["gate.W"])
