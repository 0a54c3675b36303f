"""Gradient estimators, one small module each, registered by name in one registry.

Every module of this package but `protocol` and `context` is an estimator module: it is imported
here (found, not listed), and registers its estimators with `@register`; what a policy picks by
default (`rules`) and what autotune skips (`not_measured`) are declared on the estimator."""
import importlib
import pkgutil

from .protocol import NO_GRAD, NO_GRAD_1D, REGISTRY, Estimator, NodeInfo, RowShape, Rule, estimator_params  # noqa: F401
from . import context
from .context import EstimatorContext, Kernel, register_estimator  # noqa: F401  (the public protocol)

_NOT_ESTIMATORS = {"protocol", "context"}
ESTIMATOR_MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_ESTIMATORS))
for _name in ESTIMATOR_MODULES:
    importlib.import_module(f"{__name__}.{_name}")   # registration
context.BUILT_IN.update(REGISTRY)   # register_estimator refuses these names
