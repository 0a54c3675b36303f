"""Distributions as data: `DISTRIBUTIONS` maps a node's kind to its law's entry.

Each law is one module of `ppl/laws/` (its `Distribution` entries: capability flags, kernels,
estimator templates, its constructors' name and docs) and its kernels one file
of `kernels/families/`. This module is the one place the rest of ppl reads them from.
"""
import inspect

from .laws import DISTRIBUTIONS, Distribution, alternatives, parameter_names  # noqa: F401


def law_signature(law: Distribution, lead=()) -> inspect.Signature:
    """The signature a law's constructors show: `lead` names, its params (those it takes one of
    default to None), classes, variants."""
    P = inspect.Parameter
    alts = alternatives(law)
    params = [P(n, P.POSITIONAL_OR_KEYWORD) for n in lead]
    params += [P(p, P.POSITIONAL_OR_KEYWORD if p in law.params else P.KEYWORD_ONLY, **({"default": None} if p in alts
               else {})) for p in parameter_names(law)]
    if law.grouped:
        params.append(P("classes", P.KEYWORD_ONLY, default=None))
    params += [P(k, P.KEYWORD_ONLY, default=next(iter(c))) for k, c in law.variants.items()]
    return inspect.Signature(params)
