"""Kernel families declared once for both targets (kernels/declare.py): one file per family,
found here by name; `cpu/core.py` re-exports their kernels and `cuda/core.py` their CUDA twins."""
import importlib
import pkgutil

NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))


def modules() -> list:
    """Every family module, imported (their generated kernels then kept in the cache folder)."""
    out = [importlib.import_module(f"{__name__}.{n}") for n in NAMES]
    from ..declare import save_made
    save_made()
    return out
