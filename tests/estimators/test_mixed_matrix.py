"""Mixed estimators on stacked layers: every applicable (parent estimator, child estimator) pair
on Bernoulli->Bernoulli, Bernoulli->Normal, Normal->Bernoulli, Categorical->Bernoulli and
Bernoulli->Categorical, with samples 1 and 2, every model parameter against an exact oracle.

Each layer pair is one small model: input x (3 columns), parent h1 (2 Bernoulli or Normal units,
or one group of 3 categories) from Affine(x), child h2 from Affine(h1) (a Normal child's scale
is softplus(Affine(h1))). Costs on both layers: log_prob(h1), log_prob(h2) and a likelihood of
the child: bernoulli_nll(Affine(h2), x) for a discrete child; for a Normal child
gaussian_nll(h2 as the mean, softplus(param), y) and total(tanh(h2)), elementwise paths so that
Price applies. The parent's own likelihood is the child's: its learning signal holds both layers'
costs.

Estimators (the unbiased ones): Bernoulli score, enumerate, arm, disarm, relax, rebar; Normal
pathwise, price, score; Categorical score, enumerate, relax, rebar. `score` takes its default
baseline (moving average for samples=1, leave-one-out for samples=2); `EXTRA` runs the other
baselines (none, learned, and the moving average with samples=2) on a few pairs.

Refused pairs (the compiler raises ppl.ModelError naming the node and what to use instead;
`test_refused_pair_is_a_clear_error` checks each):
- rebar or relax parent -> enumerate child (Bernoulli->Bernoulli, Categorical->Bernoulli,
  Bernoulli->Categorical): REBAR's control-variate rows (RELAX's paper form has them too) relax
  the nodes below it, and an enumerated node draws no noise to relax;
- price parent -> any child (Normal->Bernoulli): Price needs the exact Hessian diagonal of the
  costs in the node's value, and the Affine layer into the child (and the child itself) mixes
  its columns.

Oracle: tests/exact.py (enumeration of the discrete nodes, Gauss-Hermite over the Normal ones,
central differences), float64, computed once per layer pair at fixed parameter values that
every program of that pair is given. Statistic: tests/stats.py's projection ratio with its
standard error and the per-entry z over 200 independent estimates per program, each the mean
of `tile` tiled data rows, `tile` chosen from a pilot run so that the ratio's standard error is
about 0.5%. `stats.assert_unbiased` also requires the same estimates scaled by 1.05 and 0.95
to fail: every pair's test detects a 5% bias (the smallest detectable, 4 SE of the ratio, is
0.5% to 2.5%, printed with -s). Pairs with no randomness (enumerate over enumerate) must match
the oracle to 1e-6.

Which runs: every Bernoulli->Bernoulli pair and a checkerboard of the other layer kinds' pairs,
with samples=2 (see `_samples`), and three of the 14 runs of the other baselines: 78 programs
by default, for CI's time (each program's compile is about 3-5 s); `PPL_MATRIX=full pytest
tests/estimators/test_mixed_matrix.py` runs all 222 (pair, samples) programs and all 14 baseline runs.

Cost: one program per (pair, samples); each test takes about 3-5 s, almost all
of it numba compiling the program's step (the draws take well under a second). Several pairs
in one model as independent components do not save time: the compile time grows at least
linearly with the step's size (1, 2, 4, 6 components: 4.6, 9.3, 14.2, 24 s; 12: 134 s).
"""
import functools
import itertools
import os

import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Categorical, Model, Normal

import exact
import stats

X = np.array([[1., 0., 1.], [0., 1., 1.]])
Y = np.array([[0.3, -0.8], [1.1, 0.2]])
DATA = {"x": X, "y": Y}

EST = {"B": ("score", "enumerate", "arm", "disarm", "relax", "rebar"),
       "N": ("pathwise", "price", "score"),
       "C": ("score", "enumerate", "relax", "rebar")}
LAYERS = ("BB", "BN", "NB", "CB", "BC")
CALLS = 200
PILOT_CALLS, PILOT_TILE = 30, 40
TARGET_SE = 0.005
MAX_TILE = 3000


def refusal(layers, pe, ce):
    """The part of the error message a refused pair must raise, or None when it applies."""
    if pe in ("rebar", "relax") and ce == "enumerate":
        return (rf"'h2': estimator 'enumerate' cannot sit below the {pe.upper()} node 'h1'.*use 'score' or "
                rf"'rebar'")
    if pe == "price" and layers[1] != "N":
        return r"Normal 'h1': estimator 'price' needs an exact Hessian diagonal.*use 'pathwise'"
    return None


def _layer(kind, name, inp, normal_width=2):
    if kind == "B":
        return Bernoulli(name, logits=Affine(inp, 2, name=name + "_a"))
    if kind == "C":
        return Categorical(name, logits=Affine(inp, 3, name=name + "_a"), classes=3)
    return Normal(name, loc=Affine(inp, normal_width, name=name + "_loc"),
                  scale=ppl.softplus(Affine(inp, normal_width, name=name + "_sc")))


def build(layers, name, normal_width=2):
    """The layer pair's model; `normal_width` units in a Normal layer (tests/estimators/test_iwae.py: 1)."""
    pk, ck = layers
    with Model(name) as m:
        x = m.input("x", 3)
        y = m.input("y", normal_width)
        h1 = _layer(pk, "h1", x, normal_width)
        h2 = _layer(ck, "h2", h1, normal_width)
        m.cost("lp1", ppl.log_prob(h1))
        m.cost("lp2", ppl.log_prob(h2))
        if ck == "N":
            m.cost("nll2", ppl.gaussian_nll(h2, ppl.softplus(ppl.param("sd2", normal_width)), y))
            m.cost("t2", ppl.total(ppl.tanh(h2)))
        else:
            m.cost("nll2", ppl.bernoulli_nll(Affine(h2, 3, name="dec"), target=x))
    return m


@functools.lru_cache(maxsize=None)
def oracle(layers):
    """(parameter values, exact gradient) of the layer pair's model, computed once."""
    m = build(layers, f"mx_oracle_{layers}")
    prog = m.compile(dtype=np.float64, estimators="score")   # numba compiles on the first call only
    rng = np.random.default_rng(sum(map(ord, layers)))
    P = {k: rng.normal(0.0, 0.8, v.shape) for k, v in exact.model_params(prog).items()}
    return P, exact.gradient(m, P, DATA)


def _spec(est):
    return est if isinstance(est, str) else f"{est[0]}-" + "-".join(str(v) for v in est[1].values())


def run_pair(layers, pe, ce, samples):
    P, g = oracle(layers)
    m = build(layers, f"mx_{layers}_{_spec(pe)}_{_spec(ce)}_{samples}".replace("-", "_"))
    prog = m.compile(dtype=np.float64, estimators={"h1": pe, "h2": ce}, samples=samples)
    names = list(P)
    assert names == list(exact.model_params(prog))
    for k, v in P.items():
        prog.params[k][...] = v
    e = stats.flat(g, names)
    label = f"{layers[0]}->{layers[1]} {_spec(pe)} -> {_spec(ce)}, samples={samples}"
    pilot = stats.draws(prog, DATA, names, PILOT_CALLS, PILOT_TILE, seed0=10_000)
    rp = stats.check(pilot, e)
    if rp.se < 1e-9:   # no randomness (enumeration over enumeration): exact up to the oracle's rounding
        np.testing.assert_allclose(pilot.mean(0), e, rtol=1e-6, atol=1e-8 * np.abs(e).max(), err_msg=label)
        print(label, "exact", rp)
        return
    tile = int(np.clip(np.ceil(PILOT_CALLS * PILOT_TILE * (rp.se / TARGET_SE) ** 2 / CALLS), 10, MAX_TILE))
    G = stats.draws(prog, DATA, names, CALLS, tile)
    r = stats.assert_unbiased(G, e, label)
    print(label, f"tile {tile}:", r)


FULL = os.environ.get("PPL_MATRIX") == "full"


def _samples(layers, pe, ce, full=False):
    """Sample counts the default run compiles for a pair (none: the pair runs with
    PPL_MATRIX=full only).

    The step's compile (about 3-5 s a program, almost all of it Numba and LLVM) bounds CI's
    time, so the default run takes, with samples=2 (leave-one-out and expanded antithetic
    paths):
      - every Bernoulli->Bernoulli pair (35: each estimator as parent over each as child);
      - on the other four layer kinds a checkerboard of the pairs (parent index + child index
        even in EST's order): each estimator still runs as parent and as child on every layer
        kind, with about half of the partners (40 of 76, the checkerboard completed where a
        refused pair left an estimator out).
    The samples=1 paths (score's moving average, unexpanded antithetic and REBAR rows) run on
    test_estimators_unbiased.py's Bernoulli, Normal and categorical nets (one estimator a net). PPL_MATRIX=full runs every pair with samples 1
    and 2 (222 programs)."""
    if full or FULL:
        return (1, 2)
    return (2,) if (layers, pe, ce) in _default_pairs() else ()


@functools.lru_cache(maxsize=None)
def _default_pairs():
    """Every BB pair; elsewhere the checkerboard, completed where a refused pair left an
    estimator without a partner (its first applicable pair in EST's order)."""
    keep = set()
    for layers in LAYERS:
        applicable = [(pe, ce) for pe, ce in itertools.product(EST[layers[0]], EST[layers[1]])
                      if refusal(layers, pe, ce) is None]
        for pe, ce in applicable:
            if layers == "BB" or (EST[layers[0]].index(pe) + EST[layers[1]].index(ce)) % 2 == 0:
                keep.add((layers, pe, ce))
        for side in (0, 1):
            for est in {pair[side] for pair in applicable}:
                if not any(l == layers and k[side] == est for l, *k in keep):
                    keep.add((layers, *next(pair for pair in applicable if pair[side] == est)))
    return frozenset(keep)


def _pairs(full=False):
    for layers in LAYERS:
        for pe, ce in itertools.product(EST[layers[0]], EST[layers[1]]):
            if refusal(layers, pe, ce) is None:
                for samples in _samples(layers, pe, ce, full):
                    yield pytest.param(layers, pe, ce, samples, id=f"{layers}-{pe}-{ce}-K{samples}")


@pytest.mark.slow
@pytest.mark.parametrize("layers,pe,ce,samples", list(_pairs()))
def test_pair_is_unbiased(layers, pe, ce, samples):
    """The (parent, child) estimator pair gives unbiased gradients for every parameter.
    Oracle: tests/exact.py. Detects a 5% bias (stats.assert_unbiased's test of the test)."""
    run_pair(layers, pe, ce, samples)


NONE = ("score", {"baseline": "none"})
LEARNED = ("score", {"baseline": "learned"})
MOVING = ("score", {"baseline": "moving_average"})
EXTRA_FULL = [("BB", NONE, "disarm", 1), ("BB", LEARNED, "enumerate", 2), ("BB", "enumerate", LEARNED, 1),
              ("BB", "rebar", NONE, 2), ("BB", NONE, LEARNED, 2), ("BB", MOVING, "enumerate", 2),
              ("BN", LEARNED, "price", 1), ("BN", "arm", LEARNED, 2), ("NB", NONE, "relax", 2),
              ("NB", "pathwise", NONE, 1), ("CB", LEARNED, "rebar", 1), ("BC", "disarm", NONE, 2),
              ("BC", MOVING, "enumerate", 2), ("CB", "enumerate", MOVING, 2)]
# by default each other baseline once, as parent or as child, on three layer kinds
EXTRA = EXTRA_FULL if FULL else [EXTRA_FULL[i] for i in (1, 8, 13)]


@pytest.mark.slow
@pytest.mark.parametrize("layers,pe,ce,samples", EXTRA,
                         ids=[f"{l}-{_spec(p)}-{_spec(c)}-K{k}" for l, p, c, k in EXTRA])
def test_other_baselines_are_unbiased(layers, pe, ce, samples):
    """Score's other baselines (none, learned, the moving average with samples=2) in mixed pairs.
    Oracle: tests/exact.py. Detects a 5% bias (stats.assert_unbiased's test of the test)."""
    run_pair(layers, pe, ce, samples)


def _refused():
    for layers in LAYERS:
        for pe, ce in itertools.product(EST[layers[0]], EST[layers[1]]):
            if refusal(layers, pe, ce) is not None:
                yield pytest.param(layers, pe, ce, id=f"{layers}-{pe}-{ce}")


@pytest.mark.parametrize("layers,pe,ce", list(_refused()))
@pytest.mark.parametrize("samples", [1, 2])
def test_refused_pair_is_a_clear_error(layers, pe, ce, samples):
    m = build(layers, f"mx_refused_{layers}_{pe}_{ce}")
    with pytest.raises(ppl.ModelError, match=refusal(layers, pe, ce)):
        m.compile(dtype=np.float64, estimators={"h1": pe, "h2": ce}, samples=samples)


def test_the_matrix_covers_every_pair():
    """108 applicable pairs (120 less the 12 refused), all with samples 1 and 2 under
    PPL_MATRIX=full; by default every Bernoulli->Bernoulli pair and, on every layer kind, each
    estimator as parent and as child, all with samples 2."""
    full = [x.values for x in _pairs(full=True)]
    pairs = {(l, p, c) for l, p, c, _ in full}
    refused = {x.values for x in _refused()}
    assert len(pairs) == 108 and len(refused) == 12 and len(full) == 216
    assert len(pairs) + len(refused) == sum(len(EST[a]) * len(EST[b]) for a, b in LAYERS)
    run = [x.values for x in _pairs()]
    if FULL:
        assert run == full
        return
    assert all(k == 2 for *_, k in run)
    assert {(l, p, c) for l, p, c in pairs if l == "BB"} <= {(l, p, c) for l, p, c, _ in run}
    for layers in LAYERS:
        here = [(p, c) for l, p, c, _ in run if l == layers]
        applicable = [(p, c) for l, p, c in pairs if l == layers]
        assert {p for p, _ in here} == {p for p, _ in applicable}, layers   # every parent estimator
        assert {c for _, c in here} == {c for _, c in applicable}, layers   # every child estimator
