"""Argument makers of the kernel registry's CPU / CUDA parity cases: per kernel, the arguments
(shapes, dtypes, hyper-parameters) to call both implementations with. Each maker takes a ``Gen``
(a seeded generator of one dtype) and returns the argument tuple; the makers are declared in the
registry (``registry.args``) on import, for every kernel both targets have.
"""
import numpy as np

from . import registry

R, D, K, I, M = 4, 6, 3, 5, 3  # rows, columns (G = D // K = 2 groups), affine inputs, NCE noise
G = D // K


class Gen:
    def __init__(self, seed, dtype):
        self.rng = np.random.default_rng(seed)
        self.dt = dtype

    def x(self, *shape):  # any real
        return self.rng.normal(size=shape).astype(self.dt)

    def pos(self, *shape):  # scales
        return self.rng.uniform(0.5, 2.0, size=shape).astype(self.dt)

    def u(self, *shape):  # uniforms
        return self.rng.uniform(0.02, 0.98, size=shape).astype(self.dt)

    def bits(self, *shape):
        return self.rng.integers(0, 2, size=shape).astype(self.dt)

    def onehot(self, rows, groups, k):
        out = np.zeros((rows, groups * k), self.dt)
        idx = self.rng.integers(0, k, size=(rows, groups))
        for r in range(rows):
            for g in range(groups):
                out[r, g * k + idx[r, g]] = 1
        return out

    def out(self, *shape):  # garbage a forward kernel must overwrite
        return np.full(shape, 7.0, self.dt)

    def skip(self, ndim):
        return np.empty((0,) * ndim, self.dt)

    def rowmap(self, *rows):  # a row map as the step passes it (Lowering.row_map)
        return np.array(rows, self.dt)

    def h(self, v):  # a hyper-parameter as a 1-element array
        return np.array([v], self.dt)


# name -> (case builder, indices of arguments not compared: scratch the CPU uses, GPU not)
CASES = {
    # a plate of groups' noise: 3 data rows of groups 2, 0, 2, 2 samples each
    **{f"fill_{kind}_at": (lambda g: (g.out(6, D), 7, 3, 1, np.array([[2.0], [0.0], [2.0]], g.dt), 2))
       for kind in ("uniform", "normal", "logistic", "gumbel")},
}


def declare():
    """Declare every maker of CASES in the registry, on the kernel of that name (imports the CUDA
    modules, which register the kernels)."""
    from . import families
    from .cuda import core as gpu, noise as gpu_noise, rows as gpu_rows  # noqa: F401 (they register their kernels)
    from .declare import parity as family_parity
    cases = dict(CASES)
    for family in families.modules():   # a family declared once declares its cases with it
        cases.update(family_parity(family))
    for name, maker in cases.items():
        for k in registry.kernels():
            if k.name == name and "cpu" in k.impls:
                registry.args(k.family, name, maker)
