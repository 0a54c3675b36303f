"""The CPU target's REBAR set (the step calls it as ``rebar.<name>``): the kernels of the family
declared once for it (``families/rebar.py``) and its layout constants."""
from ..declare import exported as _exported
from ..families import rebar as _rebar
from ..families.rebar import CONFIGS, FIXED_CONFIGS, SEED_EPS  # noqa: F401  (the layout the lowering plans)

globals().update(_exported(_rebar))
