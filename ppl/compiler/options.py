"""The compile options as one record: `CompileOptions`, what `Model.compile(...)` takes by
keyword, checked once here and passed whole between the layers (the compiler, the autotune
policy, Program.twin, ppl.training.distributed's program recipes). `replace(**changes)` gives a checked
copy with some options changed (a twin, an autotune candidate).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import validate as V
from ..errors import ModelError
from ..targets import check_target

OBJECTIVES = ("elbo", "iwae")
# "measured": an estimator per node chosen by its measured gradient variance (ppl/compiler/autotune.py;
# "autotune" is its former name); "rules": the rule table's unbiased choice ("unbiased", its former
# name); "fast": the rule table's choice, biased low-variance estimators allowed
POLICIES = ("measured", "rules", "fast", "unbiased", "autotune")
MEASURED = ("measured", "autotune")
POLICY_ENV = "PPL_POLICY"   # the default policy, when compile is given none (else "measured")
LOWERINGS = ("auto", "arrays", "row-fused")


@dataclass(frozen=True)
class CompileOptions:
    """estimators  "auto", one estimator name (or (name, {options})) for every stochastic node,
                or {node name: name or (name, {options})}
    policy      "measured" (the default; "autotune" is its former name), "rules" ("unbiased", its former
                name) or "fast"; None: $PPL_POLICY, else "measured"
    dtype       np.float32 or np.float64 (held as an np.dtype)
    samples     draws per data row (K)
    baseline    the score estimator's default baseline (estimators.score.BASELINES) or None
    seed        parameter initialisation
    target      "cpu" or "cuda"
    cache       keep the generated step in Numba's disk cache
    pilot       policy "measured": the data it measures on now (or a row count for a model without
                inputs); else the first batch a gradient is asked for
    lowering    "auto", "arrays" or "row-fused" ("scalar", its former name, is read as "row-fused")
    objective   "elbo" or "iwae" (needs samples >= 2)
    Model.compile's docstring says what each does."""

    estimators: object = "auto"
    policy: str | None = None
    dtype: object = np.float32
    samples: int = 1
    baseline: str | None = None
    seed: int = 0
    target: str = "cpu"
    cache: bool = True
    pilot: object = field(default=None, compare=False)
    lowering: str = "auto"
    objective: str = "elbo"

    def __post_init__(self):
        samples = V.integer(self.samples, "compile: samples (draws per data row)", lo=1, hi=1 << 20)
        policy = self.policy
        if policy is None:
            policy = os.environ.get(POLICY_ENV, "").strip() or "measured"
            if policy not in POLICIES:
                raise ModelError(f"{POLICY_ENV}={policy!r}: the default policy must be one of "
                                 f"{', '.join(map(repr, POLICIES))}")
        elif not isinstance(policy, str) or policy not in POLICIES:
            raise ModelError(f"policy must be one of {', '.join(map(repr, POLICIES))}, got {policy!r}")
        object.__setattr__(self, "policy", policy)
        objective = self.objective
        if not isinstance(objective, str) or objective not in OBJECTIVES:
            raise ModelError(f"compile: objective must be one of {', '.join(map(repr, OBJECTIVES))}, got {objective!r}")
        if objective == "iwae" and samples < 2:
            raise ModelError(f"compile: objective 'iwae' is a bound over the samples=K draws of each data row; "
                             f"got samples={samples} (with one draw it is the ELBO): pass samples >= 2")
        seed = V.seed(self.seed, "compile: seed")
        dtype = self.dtype
        try:
            ok = dtype is not None and np.dtype(dtype) in (np.float32, np.float64)
        except TypeError:
            ok = False
        if not ok:
            raise ModelError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        from ..estimators.score import BASELINES
        baseline = self.baseline
        if baseline is not None and (not isinstance(baseline, str) or baseline not in BASELINES):
            raise ModelError(f"baseline (for the score estimator) must be one of {', '.join(BASELINES)} or None, "
                             f"got {baseline!r}")
        if self.target != "cpu":
            check_target(self.target)
        if isinstance(self.lowering, str) and self.lowering == "scalar":
            warnings.warn("lowering='scalar' is now called lowering='row-fused'; 'scalar' will be refused in a later "
                          "release", DeprecationWarning, stacklevel=4)
            object.__setattr__(self, "lowering", "row-fused")
        if self.lowering not in LOWERINGS:
            raise ModelError(f"lowering must be one of {', '.join(LOWERINGS)}, got {self.lowering!r}")
        object.__setattr__(self, "samples", int(samples))
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "dtype", np.dtype(dtype))

    def replace(self, **changes) -> "CompileOptions":
        """A copy with `changes` (checked like the original)."""
        return dataclasses.replace(self, **changes)
