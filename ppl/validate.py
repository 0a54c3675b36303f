"""Checks of user arguments: every one raises a ModelError naming the argument, the problem and
the fix, before anything runs (never a numba typing error, a silent truncation or a NaN)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import ModelError

SEED_MAX = 2 ** 63 - 1   # the philox key takes a uint64; seeds are kept in the int64 range


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def integer(value, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """An int (or NumPy integer, or a float with an integral value) in [lo, hi]."""
    if type(value) is int and (lo is None or value >= lo) and (hi is None or value <= hi):
        return value   # the common case, without the abstract base classes' checks
    if _is_bool(value) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise ModelError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    if not isinstance(value, numbers.Integral):
        v = float(value)
        if not math.isfinite(v) or v != int(v):
            raise ModelError(f"{what} must be an integer, got {value!r} (it would be truncated)")
    v = int(value)
    if lo is not None and v < lo:
        raise ModelError(f"{what} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ModelError(f"{what} must be <= {hi}, got {v}")
    return v


def count(value, what: str, lo: int = 1, hi: int | None = None) -> int:
    """A count of things to draw: an int (or NumPy integer) in [lo, hi]; every float (3.0 too) and
    bool is refused, as for seeds (a float count is a caller's mistake, not a number to round)."""
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise ModelError(f"{what} must be an integer >= {lo}, got {value!r} ({type(value).__name__}); pass an "
                         f"int, e.g. {what.split(': ')[-1]}=10")
    return integer(value, what, lo, hi)


def seed(value, what: str = "seed") -> int:
    """A seed: an int (or NumPy integer) in [0, 2**63 - 1]; floats and bools are refused (a float
    would be truncated, so seed=1.5 and seed=1 would give the same draws)."""
    if type(value) is int and 0 <= value <= SEED_MAX:
        return value   # the common case, without the abstract base classes' checks
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise ModelError(f"{what} must be an integer in [0, 2**63 - 1], got {value!r} ({type(value).__name__}); "
                         f"pass an int, e.g. {what}=1")
    v = int(value)
    if not 0 <= v <= SEED_MAX:
        raise ModelError(f"{what} must be an integer in [0, 2**63 - 1], got {v}")
    return v


def real(value, what: str, positive: bool = False, lo: float | None = None, hi_open: float | None = None) -> float:
    """A finite real number (optionally > 0, >= lo, < hi_open)."""
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise ModelError(f"{what} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ModelError(f"{what} must be finite, got {v}")
    if positive and not v > 0:
        raise ModelError(f"{what} must be > 0, got {v}")
    if lo is not None and v < lo:
        raise ModelError(f"{what} must be >= {lo}, got {v}")
    if hi_open is not None and not v < hi_open:
        raise ModelError(f"{what} must be < {hi_open}, got {v}")
    return v


def estimator_options(where: str, name: str, opts: dict, words: dict | None = None) -> dict:
    """Check the options of estimator `name` for a node; `where` names the node ("Bernoulli 'h'");
    `words`: the estimator's option_words, the strings an option takes beside True / False."""
    out = dict(opts)
    pre = f"{where}: {name} option"
    if "temperature" in out:
        out["temperature"] = real(out["temperature"], f"{pre} temperature", positive=True)
    if "eta" in out:
        out["eta"] = real(out["eta"], f"{pre} eta")
    if "decay" in out:
        out["decay"] = real(out["decay"], f"{pre} decay (of the moving-average baseline)", lo=0.0, hi_open=1.0)
    if "hidden" in out:
        out["hidden"] = integer(out["hidden"], f"{pre} hidden (width of the control variate's network)", lo=1,
                                hi=4096)
    if "gap" in out:
        out["gap"] = real(out["gap"], f"{pre} gap (between the chosen logit and the others)", positive=True)
    if "draws" in out:
        out["draws"] = integer(out["draws"], f"{pre} draws (of the noise given the sample)", lo=1, hi=1000)
    if "train" in out and _is_bool(out["train"]):
        out["train"] = bool(out["train"])   # numpy's True too: estimators test `train is True`
    elif "train" in out:
        said = (words or {}).get("train", {})
        if not (isinstance(out["train"], str) and out["train"] in said):
            extra = "".join(f", {w!r} ({what})" for w, what in said.items())
            raise ModelError(f"{pre} train must be True, False{extra}, got {out['train']!r}")
    for key, said in (words or {}).items():   # an option of words alone
        if key != "train" and key in out and not (isinstance(out[key], str) and out[key] in said):
            listed = ", ".join(f"{w!r} ({what})" for w, what in said.items())
            raise ModelError(f"{pre} {key} must be one of {listed}, got {out[key]!r}")
    if "baseline" in out and out["baseline"] is not None and not isinstance(out["baseline"], str):
        raise ModelError(f"{pre} baseline must be a name ('none', 'moving_average', 'loo', 'learned'), "
                         f"got {out['baseline']!r}")
    return out
