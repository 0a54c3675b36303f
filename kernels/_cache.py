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
    _lock_cache_files(caching)
    return True


# ---------------------------------------------------------------------------- process safety
# Numba's cache of a function is an index (signature -> data file name) and data files, written
# separately: two processes compiling the same function at once (pytest-xdist workers, Dask
# workers, two scripts) can leave an index entry pointing at the other process's data, i.e. a
# later load returns the machine code of another signature. Under the ppl cache folder every
# load and save of a function's cache holds an exclusive lock on a `.lock` file beside its
# index; a process that misses keeps the lock while it compiles and saves, so the others wait
# and then load its result instead of compiling the same thing again; a compile that raises
# gives its lock back. A lock held longer than LOCK_WAIT seconds is given up on: the waiter
# compiles on its own, and its save is still locked.
LOCK_WAIT = 120.0
_held = {}   # lock path -> open file holding the lock, in this process


def _lock_path(cache):
    index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
    if not index:
        return None
    try:
        Path(index).resolve().relative_to(cache_root().resolve())
    except (ValueError, OSError):
        return None
    return os.path.splitext(index)[0] + ".lock"


def _acquire(path):
    import fcntl
    import time
    if path in _held:
        return True
    os.makedirs(os.path.dirname(path), exist_ok=True)
    f = open(path, "a")
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _held[path] = f
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.close()
                return False
            time.sleep(0.02)


def _release(path):
    import fcntl
    f = _held.pop(path, None)
    if f is not None:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def _lock_cache_files(caching):
    """Wrap Numba's Cache.load_overload / save_overload with the per-function lock above."""
    try:
        import fcntl  # noqa: F401  (POSIX only; elsewhere Numba's own behaviour stays)
    except ImportError:   # pragma: no cover
        return
    cls = getattr(caching, "Cache", None)
    if cls is None or getattr(cls, "_ppl_locked", False) or not hasattr(cls, "load_overload"):
        return
    load, save = cls.load_overload, cls.save_overload

    def load_overload(self, sig, target_context):
        path = _lock_path(self)
        if path is None or not _acquire(path):
            return load(self, sig, target_context)
        try:
            data = load(self, sig, target_context)
        except BaseException:
            _release(path)
            raise
        if data is not None:
            _release(path)
        return data   # a miss keeps the lock until save_overload

    def save_overload(self, sig, data):
        path = _lock_path(self)
        if path is None:
            return save(self, sig, data)
        held = _acquire(path)
        try:
            return save(self, sig, data)
        finally:
            if held:
                _release(path)

    cls.load_overload, cls.save_overload = load_overload, save_overload
    cls._ppl_locked = True

    from numba.core import dispatcher
    compile_ = dispatcher.Dispatcher.compile

    def compile(self, sig):
        before = set(_held)
        try:
            return compile_(self, sig)
        finally:   # a miss whose compile raised (or was not saved) gives its lock back
            for path in set(_held) - before:
                _release(path)

    dispatcher.Dispatcher.compile = compile
