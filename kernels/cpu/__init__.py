"""The CPU target's array kernels (@njit), one module per family."""
