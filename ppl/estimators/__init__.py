"""Gradient estimators, one small module each, registered by name in one registry."""
from .base import REGISTRY, Estimator, NodeInfo, estimator_params  # noqa: F401
from . import pathwise, score, straight_through, concrete, enumerate, arm, relax, rebar, price, vimco, dreg, reinmax, gumbel_rao, gapped_st, double_cv, cat_disarm, unordered_set, lax  # noqa: F401  (registration)
from .custom import NO_GRAD, EstimatorContext, Kernel, register_estimator  # noqa: F401  (the public protocol)
