"""The CPU target's RELAX set (the step calls it as ``relax.<name>``): the kernels of the family
declared once for it (``families/relax.py``), and the size of the control variate's parameter
vector (``relax_size``, kernels/math/relax_net.py)."""
from ..declare import exported as _exported
from ..families import relax as _relax
from ..math.relax_net import relax_size  # noqa: F401

globals().update(_exported(_relax))
