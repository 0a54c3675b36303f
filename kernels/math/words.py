"""Words many rows add to: a check's count of failing entries, each row's added into one word of
the CUDA step's sink (lowering/printer.py). On the CPU a kernel's rows run one after another and
``add_word`` is a plain add; kernels/cuda/device.py gives it a twin that adds atomically, since a
device runs the rows at once (and the lanes rewrite, kernels/lanes.py, has lane 0 alone call it)."""
from numba import njit

ADDING = ("add_word",)   # the calls that only add to the array they are given (kernels/fusion.py)


@njit(cache=True, error_model="numpy")
def add_word(a, k, v):
    """a[k] += v."""
    a[k] += v
