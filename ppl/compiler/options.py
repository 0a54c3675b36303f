"""The compile options as one record: `CompileOptions`, what `Model.compile(...)` takes by
keyword, checked once here and passed whole between the layers (the compiler, the autotune
policy, Program.twin, ppl.training.distributed's program recipes). `replace(**changes)` gives a checked
copy with some options changed (a twin, an autotune candidate).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import validate as V
from ..errors import ModelError
from ..targets import check_target

OBJECTIVES = ("elbo", "iwae")
LOWERINGS = ("auto", "arrays", "row-fused")


@dataclass(frozen=True)
class CompileOptions:
    """estimators  "auto", one estimator name (or (name, {options})) for every stochastic node,
                or {node name: name or (name, {options})}
    policy      "unbiased", "fast" or "autotune"
    dtype       np.float32 or np.float64 (held as an np.dtype)
    samples     draws per data row (K)
    baseline    the score estimator's default baseline (estimators.score.BASELINES) or None
    seed        parameter initialisation
    target      "cpu" or "cuda"
    cache       keep the generated step in Numba's disk cache
    pilot       policy "autotune": the pilot data (or a row count for a model without inputs)
    lowering    "auto", "arrays" or "row-fused" ("scalar", its former name, is read as "row-fused")
    objective   "elbo" or "iwae" (needs samples >= 2)
    Model.compile's docstring says what each does."""

    estimators: object = "auto"
    policy: str = "unbiased"
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
