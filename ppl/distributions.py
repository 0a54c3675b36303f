"""Distributions as data: `DISTRIBUTIONS` maps a node's kind to its law's entry.

Each law is one module of `ppl/laws/` (its `Distribution` entries: capability flags, kernels,
estimator templates, its constructors' name and docs) and its kernels one file
of `kernels/families/`. This module is the one place the rest of ppl reads them from.
"""
from .laws import DISTRIBUTIONS, Distribution, alternatives, parameter_names  # noqa: F401
