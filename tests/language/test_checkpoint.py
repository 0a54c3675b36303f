"""Checkpointed scans (`ppl.scan(..., checkpoint=K)`, ppl/lowering/loops.py, ir.Checkpoint).

Oracle: the same model with every step kept (checkpoint=False). A checkpointed loop runs each
segment's forward body again from the carry saved before it, with the same noise (a step's
streams are addressed by its index), in the same order of operations: its loss and gradient
must equal the unchecked loop's bit for bit, for segments that divide the length and those
that do not, one step long and as long as the loop.
"""
import numpy as np
import pytest

import ppl
from ppl import ModelError
from ppl.language import dist



def mixed(name, T, K):
    """A continuous node (pathwise) and a Bernoulli (DisARM) per step, a carry of two nodes,
    per-step costs, a per-step output read after the loop and a cost on the last carry."""
    with ppl.Model(name) as m:
        x = m.input("x", T)
        w = ppl.param("w", 1, 0.4)

        def step(carry, x_t):
            s, h = carry
            z = ppl.Normal("z", w * s + x_t, ppl.softplus(ppl.param("c", 1, -0.3)))
            b = ppl.Bernoulli("b", logits=ppl.Affine(ppl.concat([s, z]), 1, name="gate"))
            s2 = ppl.tanh(s + 0.5 * z + b)
            m.cost("c_step", ppl.total(0.3 * (z * z) + 0.2 * (s2 * h)))
            return (s2, h + b), z
        (s, h), zs = ppl.scan(step, (m.input("s0", 1), ppl.const(0.0, 1)), xs=x, length=T, checkpoint=K)
        m.cost("after", ppl.total(s * s + 0.1 * h))
        m.cost("outputs", ppl.total(0.05 * zs))
    return m


@pytest.mark.parametrize("K", [2, 3, 7, 12])
def test_a_checkpointed_scan_equals_the_unchecked_one_bit_for_bit(K):
    T = 12
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(0, 1, (5, T)), "s0": rng.normal(0, 1, (5, 1))}
    est = {"z": "pathwise", "b": "disarm"}
    ref = mixed("mixed_all", T, False).compile(dtype=np.float64, estimators=est)
    ck = mixed(f"mixed_ck{K}", T, K).compile(dtype=np.float64, estimators=est)
    assert ("for seg_ in range(" in ck.source) == (K < T)
    for seed in (0, 1):
        (l1, g1), (l2, g2) = ref.grad(data, seed=seed), ck.grad(data, seed=seed)
        assert l1 == l2
        for k in g1:
            assert np.array_equal(g1[k], g2[k]), (k, g1[k], g2[k])
    assert ref.loss_parts(data, seed=3) == ck.loss_parts(data, seed=3)


def test_a_summed_chain_checkpointed():
    """The forward algorithm's carry (a summed-out HMM of 2 states and 3 symbols) in segments of 7
    of 20 steps."""
    T, S, M = 20, 2, 3
    X = np.eye(M)[np.random.default_rng(1).integers(0, M, (6, T))].reshape(6, T * M)   # one symbol per step

    def hmm(name, K):
        with ppl.Model(name) as m:
            x = m.input("x", T * M)

            def step(z_prev, x_t):
                z = m.latent("z", dist.Categorical(logits=ppl.Affine(z_prev, S, name="trans"), classes=S),
                             guide="enumerate")
                m.observe("sym", dist.Categorical(logits=ppl.Affine(z, M, name="emit"), classes=M), x_t)
                return z, None
            ppl.scan(step, ppl.const(0.0, S), xs=x, length=T, checkpoint=K)
        return m
    ref, ck = hmm("hmm_all", False).compile(dtype=np.float64), hmm("hmm_ck", 7).compile(dtype=np.float64)
    for k in ref.params:
        ck.params[k][...] = ref.params[k]
    (l1, g1), (l2, g2) = ref.grad({"x": X}), ck.grad({"x": X})
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)


def test_the_default_rule_and_the_refusals():
    """Unset, a scan is checkpointed every ceil(sqrt(T)) steps when its steps would keep more than
    1 MiB per data row; stochastic derivatives (a path carried across the steps) and the CUDA
    target are refused by name."""
    def walk(name, T, K=None):
        with ppl.Model(name) as m:
            th = ppl.param("th", 1, 0.2)

            def step(s, t):
                up = ppl.Bernoulli("up", logits=th - 0.5 * s)
                s = s + 2.0 * up - 1.0
                m.cost("c", ppl.total(0.1 * (s * s)))
                return s, None
            ppl.scan(step, m.input("s0", 1), length=T, checkpoint=K)
        return m
    assert "for seg_ in range(" not in walk("short", 1000).compile(estimators="score", policy="rules").source
    src = walk("long", 40_000).compile(estimators="score", policy="rules").source
    assert "for seg_ in range(200 - 1, -1, -1):" in src   # ceil(sqrt(40000)) = 200 steps a segment
    with pytest.raises(ModelError, match="checkpoint=5.*'up' \\(estimator 'stochastic_derivative'\\) keeps a path"):
        walk("sd", 50, 5).compile(estimators="stochastic_derivative", policy="rules")
    with pytest.raises(ModelError, match="checkpoint=5.*CPU target"):
        walk("gpu", 50, 5).compile(estimators="score", policy="rules", target="cuda")
    for bad in (0, 1, 2.5):
        with pytest.raises(ModelError, match="checkpoint"):
            walk(f"bad{bad}".replace(".", "_"), 50, bad)


@pytest.mark.parametrize("est,samples", [("mvd", 1), ("arms", 2)])
def test_estimators_with_rows_of_their_own_checkpointed(est, samples):
    """mvd's branch rows and ARMS's draws run the rest of the loop too: the same bits in segments."""
    T = 9
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(0, 1, (4, T)), "s0": rng.normal(0, 1, (4, 1))}
    ests = {"z": "pathwise", "b": est}
    ref = mixed(f"rows_all_{est}", T, False).compile(dtype=np.float64, estimators=ests, samples=samples)
    ck = mixed(f"rows_ck_{est}", T, 4).compile(dtype=np.float64, estimators=ests, samples=samples)
    (l1, g1), (l2, g2) = ref.grad(data, seed=1), ck.grad(data, seed=1)
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)
