"""The CUDA target's kernels and launchers, one module per family."""
