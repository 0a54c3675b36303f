"""Numba's disk cache, behind the functions `numba_compat` exports (its docstring: every use of
Numba's private API in ppl is in these two modules): the cache locator of ppl's functions, a
function's disk cache made at its first use, damaged cache files read as misses, and the hooks
around every load and save."""
import os
from pathlib import Path


def is_cached(dispatcher, sig) -> bool:
    """Whether `dispatcher` (an ``@njit`` function) has an overload for the argument types `sig`
    in this process or in its disk cache (its index, read as Numba reads it; an unreadable index:
    not cached). Loads nothing."""
    if sig in dispatcher.overloads:
        return True
    try:
        cache = dispatcher._cache
        key = cache._index_key(sig, dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - no disk cache (NullCache), or another Numba: not cached
        return False


def cache_index_path(cache):
    """The index file (``.nbi``) of a function's disk cache (Numba's ``Cache``), or None."""
    return getattr(getattr(cache, "_cache_file", None), "_index_path", None)


def _caching():
    try:
        from numba.core import caching
    except ImportError:   # pragma: no cover
        return None
    return caching


_ensured = set()   # cache folders made and found writable in this process


def add_cache_locator(owns, cache_dir) -> bool:
    """Put first in Numba's list of cache locators one for the functions of the source files
    `owns(path)` accepts (an absolute path): their cache files go to a sub-folder of
    ``cache_dir()`` named after the source's folder (as Numba's ``NUMBA_CACHE_DIR`` does).
    ``NUMBA_CACHE_DIR``, when set, wins. Idempotent; False when this Numba has no such list."""
    caching = _caching()
    if caching is None:   # pragma: no cover
        return False
    from numba.core import config
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    base = getattr(caching, "UserProvidedCacheLocator", None) or getattr(caching, "_UserProvidedCacheLocator", None)
    if impl is None or base is None or not hasattr(impl, "_locator_classes"):   # pragma: no cover
        return False
    if any(getattr(c, "_ppl", False) for c in impl._locator_classes):
        return True

    class PplCacheLocator(base):
        _ppl = True

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(Path(cache_dir()) / self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        def ensure_cache_path(self):
            # Numba makes the folder and writes a temporary file into it for every function it
            # decorates (hundreds at import); once a folder passed, a stat will do
            path = self._cache_path
            if path in _ensured and os.path.isdir(path):
                return
            super().ensure_cache_path()
            _ensured.add(path)

        @classmethod
        def from_function(cls, py_func, py_file):
            if config.CACHE_DIR:
                return None
            if not owns(os.path.abspath(py_file)):
                return None
            return super(base, cls).from_function(py_func, py_file)   # the source-file mixin's

    impl._locator_classes.insert(0, PplCacheLocator)
    return True


def lazy_function_caches(owns) -> bool:
    """A function of the source files `owns(path)` accepts gets its disk cache (Numba's
    ``FunctionCache``: its locator, the source's stamp, its folder made) at its first compile or
    cache load, not where it is decorated: `import ppl` decorates about a thousand kernels and
    loads a few. Idempotent; False when this Numba has no such method."""
    from numba.core import dispatcher
    caching = _caching()
    cls = getattr(dispatcher, "Dispatcher", None)
    if caching is None or cls is None or not hasattr(cls, "enable_caching"):   # pragma: no cover
        return False
    if getattr(cls.enable_caching, "_ppl", False):
        return True
    plain = cls.enable_caching

    class LazyCache:
        """The function's FunctionCache, made at its first use."""
        __slots__ = ("_py_func", "_made")

        def __init__(self, py_func):
            self._py_func, self._made = py_func, None

        def __getattr__(self, name):
            if self._made is None:
                self._made = caching.FunctionCache(self._py_func)
            return getattr(self._made, name)

    def enable_caching(self):
        path = getattr(getattr(self.py_func, "__code__", None), "co_filename", "")
        if path and owns(os.path.abspath(path)):
            self._cache = LazyCache(self.py_func)
        else:
            plain(self)
    enable_caching._ppl = True
    cls.enable_caching = enable_caching
    return True


def read_damaged_as_miss(report) -> bool:
    """Make a damaged disk cache a cache miss instead of an exception, for every function.

    Numba reads a function's index (signature -> data file) and a data file with ``pickle`` and
    lets any error through: one truncated or garbled file (a full disk, a killed copy, a file
    from elsewhere) then fails every later load of the function until the folder is deleted.
    Here an index that cannot be read counts as empty, a data file that cannot be read (or holds
    something else than an entry) as absent, and an entry that cannot be rebuilt as a miss; each
    calls ``report(path, error)`` (the file, the exception). The function is then compiled again
    and its save rewrites the index / the data file. A data file that is missing is Numba's own
    case (a miss, no report). Idempotent; False when this Numba lacks the hooks."""
    caching = _caching()
    files = getattr(caching, "IndexDataCacheFile", None)
    cache = getattr(caching, "Cache", None)
    if files is None or cache is None or not all(hasattr(files, a) for a in ("_load_index", "_load_data")) or not hasattr(cache, "load_overload"):
        return False   # pragma: no cover
    if getattr(files, "_ppl_damage", None) is not None:
        files._ppl_damage = report
        return True
    load_index, load_data, load_overload = files._load_index, files._load_data, cache.load_overload

    def _load_index(self):
        try:
            overloads = load_index(self)
            if not isinstance(overloads, dict):
                raise TypeError(f"the index holds a {type(overloads).__name__}, not a dict")
            return overloads
        except Exception as e:  # noqa: BLE001 - any unpickling error: truncated, garbled, foreign
            files._ppl_damage(self._index_path, e)
            return {}

    def _load_data(self, name):
        try:
            data = load_data(self, name)
            if not isinstance(data, tuple):
                raise TypeError(f"the file holds a {type(data).__name__}, not a cache entry")
            return data
        except FileNotFoundError:
            raise   # removed since the index was read: Numba's own miss
        except Exception as e:  # noqa: BLE001
            files._ppl_damage(self._data_path(name), e)
            return None

    def guarded_load_overload(self, sig, target_context):
        try:
            res = load_overload(self, sig, target_context)
        except Exception as e:  # noqa: BLE001 - an entry that unpickled but cannot be rebuilt
            files._ppl_damage(cache_index_path(self) or repr(self), e)
            return None
        wrong = _foreign_entry(self, sig, res)
        if wrong:   # a data file swapped with another function's (or another signature's): a miss
            files._ppl_damage(cache_index_path(self) or repr(self), ValueError(wrong))
            return None
        return res

    files._load_index, files._load_data = _load_index, _load_data
    cache.load_overload = guarded_load_overload
    files._ppl_damage = report
    return True


def _foreign_entry(cache, sig, res):
    """Why a loaded cache entry is not the function and signature asked for (a data file
    swapped or copied from elsewhere, readable but another function's), or None."""
    if res is None:
        return None
    want = tuple(getattr(sig, "args", sig))
    got = tuple(getattr(getattr(res, "signature", None), "args", want))
    name = getattr(getattr(res, "fndesc", None), "qualname", None)
    py = getattr(getattr(cache, "_py_func", None), "__qualname__", None)
    if got != want:
        return f"the entry holds a function of the arguments {got}, not {want}"
    if name is not None and py is not None and name.split(".")[-1] != py.split(".")[-1]:
        return f"the entry holds the function '{name}', not '{py}'"
    return None


def wrap_cache_io(load, save) -> bool:
    """Route every function's disk cache loads through ``load(original, cache, sig,
    target_context)`` and saves through ``save(original, cache, sig, data)``, where
    ``original(cache, ...)`` is Numba's (``Cache.load_overload`` / ``save_overload``).
    Once; False when this Numba lacks them."""
    caching = _caching()
    cls = getattr(caching, "Cache", None)
    if cls is None or not hasattr(cls, "load_overload") or not hasattr(cls, "save_overload"):
        return False   # pragma: no cover
    if getattr(cls, "_ppl_wrapped", False):
        return True
    load_, save_ = cls.load_overload, cls.save_overload

    def load_overload(self, sig, target_context):
        return load(load_, self, sig, target_context)

    def save_overload(self, sig, data):
        return save(save_, self, sig, data)

    cls.load_overload, cls.save_overload = load_overload, save_overload
    cls._ppl_wrapped = True
    return True
