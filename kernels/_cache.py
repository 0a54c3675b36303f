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

A cache file that cannot be read (a truncated or garbled index or data file, one from
elsewhere), in this folder or any other, is a cache miss instead of an exception on every later
run: one `CacheWarning` names the file, the function is compiled again and the file rewritten
(Numba alone lets the unpickling error through until the folder is deleted). The Numba
internals all this touches are in `numba_compat`.
"""
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from . import numba_compat

KERNELS = Path(__file__).resolve().parent


_usable = {}   # the configured cache folder -> the folder this process uses (it, or a temporary one)


def cache_root() -> Path:
    """The ppl cache folder: `$PPL_CACHE_DIR`, default `~/.cache/ppl`. A folder that cannot be
    written (read-only, not a folder, no permission) is replaced, for this process, by a
    temporary one removed at exit, with one warning saying how to fix it: a cache is never fatal."""
    want = Path(os.environ.get("PPL_CACHE_DIR") or Path.home() / ".cache" / "ppl")
    got = _usable.get(want)
    if got is None:
        got = _usable[want] = _writable(want)
    return got


def _writable(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return root
    except OSError as e:
        import atexit
        import shutil
        import tempfile
        tmp = Path(tempfile.mkdtemp(prefix="ppl-cache-"))
        atexit.register(shutil.rmtree, tmp, True)
        cannot_write(root, e, f"this process compiles into {tmp}, removed at exit (nothing is kept for the next run)")
        return tmp


_unwritable = []


def cannot_write(path, error, what: str = "this run keeps what it compiles in memory") -> None:
    """Warn once per process that the cache cannot be written (a read-only folder, a full disk):
    the run goes on without it."""
    if _unwritable:
        return
    _unwritable.append(str(path))
    import warnings
    warnings.warn(f"ppl cache: {path} cannot be written ({type(error).__name__}: {' '.join(str(error).split())}); "
                  f"{what}: free the disk or set PPL_CACHE_DIR to a writable folder", CacheWarning, stacklevel=3)


@lru_cache(maxsize=None)
def kernels_version() -> str:
    """A hash of the kernel sources (file names and contents)."""
    h = hashlib.sha256()
    for f in sorted(KERNELS.rglob("*.py")):
        h.update(str(f.relative_to(KERNELS)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def declared_table():
    """The cache folder's table of this version's generated kernels (kernels/declare.py), or None
    where there is no folder for a cache."""
    import importlib.util
    import sys
    try:
        return (cache_root() / "numba" / kernels_version()
                / f"declared-{sys.implementation.cache_tag}-{importlib.util.MAGIC_NUMBER.hex()}.marshal")
    except RuntimeError:   # no home folder to hold a cache
        return None


def declared_before() -> bool:
    """Whether the cache folder holds this version's generated kernels: a process has declared
    them, and has likely compiled some (compiler/ahead.prestart asks before they are declared)."""
    path = declared_table()
    return path is None or path.exists()


def _package_roots() -> tuple:
    """The folders whose modules are ppl's: the installed `ppl` package, or in a source
    checkout its `ppl/`, `kernels/` and `models/` folders."""
    pkg = KERNELS.parent
    if (pkg / "__init__.py").exists() and (pkg / "kernels").resolve() == KERNELS:   # installed: ppl/kernels
        return (str(pkg),)
    return tuple(str(p) for p in (KERNELS, pkg / "ppl", pkg / "models"))


_ROOTS = _package_roots()
_installed = []


def _owns(path: str) -> bool:
    return any(path.startswith(r + os.sep) for r in _ROOTS)


def _numba_dir() -> Path:
    return cache_root() / "numba" / kernels_version()


def install() -> bool:
    """Put the ppl locator first in Numba's list, lock each function's cache under the ppl cache
    folder, read damaged cache files as misses and make a kernel's cache at its first compile, not
    at import (once); False when this Numba has no such hook."""
    if _installed:
        return True
    if not numba_compat.add_cache_locator(_owns, _numba_dir):
        return False   # pragma: no cover - a Numba without the hook keeps its default
    numba_compat.read_damaged_as_miss(report_damage)
    numba_compat.lazy_function_caches(_owns)
    _lock_cache_files()
    _installed.append(True)
    return True


# ---------------------------------------------------------------------------- damaged files
class CacheWarning(UserWarning):
    """A file of the ppl cache could not be read: it was treated as a cache miss (``ppl.CacheWarning``)."""


_reported = set()   # (path, size, mtime) of the damaged files reported by this process


def report_damage(path, error) -> None:
    """Warn once per process, at the first damaged file (its path, size and time): it could not
    be read (or held another function's code), is a cache miss, and is written again by the
    compile that follows; later damaged files are misses alike, without another warning."""
    try:
        st = os.stat(path)
        key = (str(path), st.st_size, st.st_mtime_ns)
    except OSError:
        key = (str(path), None, None)
    if key in _reported:
        return
    _reported.add(key)
    if len(_reported) > 1:
        return
    import warnings
    detail = " ".join(str(error).split())   # one line: some unpickling errors span two
    warnings.warn(f"ppl cache: {path} was unreadable ({type(error).__name__}: {detail}); read as a "
                  f"cache miss: the function is compiled again and the file rebuilt, as any other damaged "
                  f"file of this run (deleting the folder {cache_root()} is always safe)", CacheWarning,
                  stacklevel=2)


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
    index = numba_compat.cache_index_path(cache)
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
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        f = open(path, "a")
    except OSError:   # a cache that cannot be written: no lock (and no save, see _locked_save)
        return False
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


def _locked_load(load, cache, sig, target_context):
    path = _lock_path(cache)
    if path is None or not _acquire(path):
        return load(cache, sig, target_context)
    try:
        data = load(cache, sig, target_context)
    except BaseException:
        _release(path)
        raise
    if data is not None:
        _release(path)
    return data   # a miss keeps the lock until save_overload


def _locked_save(save, cache, sig, data):
    path = _lock_path(cache)
    if path is None:
        return save(cache, sig, data)
    held = _acquire(path)
    try:
        return save(cache, sig, data)
    except OSError as e:   # a full disk or a read-only folder: the code stays in memory
        cannot_write(path, e)
        return None
    finally:
        if held:
            _release(path)


def _compile_releasing(compile_, dispatcher, sig):
    before = set(_held)
    try:
        return compile_(dispatcher, sig)
    finally:   # a miss whose compile raised (or was not saved) gives its lock back
        for path in set(_held) - before:
            _release(path)


def _lock_cache_files():
    """Wrap Numba's cache loads and saves with the per-function lock above."""
    try:
        import fcntl  # noqa: F401  (POSIX only; elsewhere Numba's own behaviour stays)
    except ImportError:   # pragma: no cover
        return
    if numba_compat.wrap_cache_io(_locked_load, _locked_save):
        numba_compat.wrap_compile(_compile_releasing)
