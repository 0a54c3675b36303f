"""Where Numba keeps the compiled code of ppl's own kernels: `$PPL_CACHE_DIR/numba/<version>`
(default `~/.cache/ppl`), never next to the sources.

Numba's default puts a module's cache files in a `__pycache__` folder beside it. For an
installed ppl that folder is inside site-packages, where pip does not know the files: an
uninstall (e.g. switching `pip install .` to `pip install -e .`) leaves a `ppl` folder of
cache files behind, which Python then imports as an empty namespace package shadowing the
real one. A cache locator for files of this package sends them to the ppl cache folder
instead, in a sub-folder named by a hash of every kernel source: Numba does not invalidate a
cached caller when a kernel it calls changes in another file, the version folder does.
`NUMBA_CACHE_DIR`, when set, keeps its meaning (Numba's own locator then wins).
"""
import hashlib
import os
from functools import lru_cache
from pathlib import Path

KERNELS = Path(__file__).resolve().parent


def cache_root() -> Path:
    """The ppl cache folder: `$PPL_CACHE_DIR`, default `~/.cache/ppl`."""
    return Path(os.environ.get("PPL_CACHE_DIR") or Path.home() / ".cache" / "ppl")


@lru_cache(maxsize=None)
def kernels_version() -> str:
    """A hash of the kernel sources (file names and contents)."""
    h = hashlib.sha256()
    for f in sorted(KERNELS.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _package_roots() -> tuple:
    """The folders whose modules are ppl's: the installed `ppl` package, or in a source
    checkout its `ppl/`, `kernels/` and `models/` folders."""
    pkg = KERNELS.parent
    if (pkg / "__init__.py").exists() and (pkg / "kernels").resolve() == KERNELS:   # installed: ppl/kernels
        return (str(pkg),)
    return tuple(str(p) for p in (KERNELS, pkg / "ppl", pkg / "models"))


def install() -> bool:
    """Put the ppl locator first in Numba's list; False when this Numba has no such hook."""
    try:
        from numba.core import caching, config
    except ImportError:   # pragma: no cover
        return False
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    base = getattr(caching, "UserProvidedCacheLocator", None) or getattr(caching, "_UserProvidedCacheLocator", None)
    if impl is None or base is None:   # pragma: no cover - a Numba without the hook keeps its default
        return False
    if any(getattr(c, "_ppl", False) for c in impl._locator_classes):
        return True
    roots = _package_roots()

    class PplCacheLocator(base):
        _ppl = True

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            root = cache_root() / "numba" / kernels_version()
            self._cache_path = str(root / self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if config.CACHE_DIR:
                return None
            path = os.path.abspath(py_file)
            if not any(path.startswith(r + os.sep) for r in roots):
                return None
            return super(base, cls).from_function(py_func, py_file)   # the source-file mixin's

    impl._locator_classes.insert(0, PplCacheLocator)
    return True
