"""A damaged cache file is a cache miss, never a crash (kernels/_cache.py, kernels/numba_compat.py).

Checked in fresh processes over one cache folder, filled by an undamaged run: a truncated index
(``.nbi``), a data file (``.nbc``) overwritten with random bytes, and a kernel's symbol record
(``symbols/``) overwritten with random bytes, and the generated kernels' compiled sources
(``declared-*.marshal``, kernels/declare.py) truncated or overwritten, and two kernels' data files
swapped (each readable, but the other function's code); and a cache folder that cannot be written
(not a folder; a full disk at every save). Each time the next run recompiles what it needs
and gives the same loss and gradient as the undamaged run, with one ``ppl.CacheWarning`` naming
the file; the run after it is warning-free and loads the step from the cache again (the file
was rewritten).
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

RUN = textwrap.dedent('''
    import json
    import numpy as np
    import ppl
    from ppl import Affine, Bernoulli, Model

    with Model("damageprobe") as m:
        x = m.input("x", 3)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        m.cost("nll", ppl.bernoulli_nll(Affine(h, 3, name="dec"), target=x))
    prog = m.compile(dtype=np.float64, estimators="disarm", lowering="arrays")
    X = np.array([[1., 0., 1.], [0., 1., 1.], [1., 1., 0.]])
    loss, g = prog.grad({"x": X}, seed=3, step=2)
    st = prog.entry.stats
    print(json.dumps({
        "values": [repr(loss)] + [repr(float(v)) for k in sorted(g) for v in g[k].ravel()],
        "step": [sum(st.cache_hits.values()), sum(st.cache_misses.values())],
    }))
''')


def _run(cache, prelude=""):
    """(result, stderr) of RUN (after `prelude`) in a fresh interpreter whose ppl cache folder is `cache`."""
    # the step compiled at its first call (not interpreted first, ppl/runtime/first_steps.py): its cache is checked too
    env = dict(os.environ, PPL_CACHE_DIR=str(cache), PPL_FIRST_STEPS="0")
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("PYTHONWARNINGS", None)
    r = subprocess.run([sys.executable, "-c", prelude + RUN], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A cache folder filled by one undamaged run, and that run's result."""
    cache = tmp_path_factory.mktemp("damage") / "cache"
    cold, err = _run(cache)
    assert "CacheWarning" not in err, err[-3000:]
    warm, err = _run(cache)
    assert warm["values"] == cold["values"] and warm["step"] == [1, 0], warm
    return cache, cold


def _version_dir(cache):
    (d,) = (cache / "numba").iterdir()
    return d


def _damaged(filled, tmp_path, pick, damage):
    """Copy the filled cache, damage the file `pick(cache)` chose, then run twice."""
    src, cold = filled
    cache = tmp_path / "cache"
    shutil.copytree(src, cache)
    path = pick(cache)
    damage(path)
    first, err1 = _run(cache)
    assert first["values"] == cold["values"], (first, cold)
    warned = [line for line in err1.splitlines() if "CacheWarning" in line]
    assert len(warned) == 1, err1[-3000:]
    assert str(path) in warned[0] and "unreadable" in warned[0] and "rebuilt" in warned[0], warned
    assert first["step"] == [0, 1], first   # the step was compiled again
    again, err2 = _run(cache)
    assert again["values"] == cold["values"], again
    assert "CacheWarning" not in err2, err2[-3000:]
    assert again["step"] == [1, 0], again   # and loaded from its rewritten cache
    return path


def _step_file(suffix):
    def pick(cache):
        (f,) = (cache / "__pycache__").glob(f"ppl_gen_damageprobe_*.step-*{suffix}")
        return f
    return pick


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _garble(path):
    path.write_bytes(os.urandom(max(path.stat().st_size, 64)))


def test_truncated_index_is_a_miss(filled, tmp_path):
    _damaged(filled, tmp_path, _step_file(".nbi"), _truncate)


def test_garbled_data_file_is_a_miss(filled, tmp_path):
    _damaged(filled, tmp_path, _step_file(".nbc"), _garble)


def test_garbled_symbol_record_is_a_miss(filled, tmp_path):
    def pick(cache):
        records = sorted((_version_dir(cache) / "symbols").iterdir())
        assert records, "the step recorded no kernel symbol"
        return records[0]
    path = _damaged(filled, tmp_path, pick, _garble)
    import pickle
    name, record = pickle.loads(path.read_bytes())   # rewritten
    assert name.startswith("_ZN3ppl7kernels") and record[0].startswith("ppl.kernels."), (name, record)


@pytest.mark.parametrize("damage", [_truncate, _garble], ids=["truncated", "garbled"])
def test_damaged_generated_kernel_sources_are_made_again(filled, tmp_path, damage):
    """The declared kernels' compiled sources (kernels/declare.py) read as a miss: generated
    again with one warning naming the file, then rewritten (the next run is warning-free)."""
    src, cold = filled
    cache = tmp_path / "cache"
    shutil.copytree(src, cache)
    (path,) = _version_dir(cache).glob("declared-*.marshal")
    damage(path)
    first, err1 = _run(cache)
    assert first["values"] == cold["values"], (first, cold)
    warned = [line for line in err1.splitlines() if "CacheWarning" in line]
    assert len(warned) == 1 and str(path) in warned[0], err1[-3000:]
    again, err2 = _run(cache)
    assert again["values"] == cold["values"] and again["step"] == [1, 0], again
    assert "CacheWarning" not in err2, err2[-3000:]


def test_the_generated_kernel_sources_are_kept_before_the_process_ends(tmp_path):
    """The declared kernels' compiled sources are written once every family is declared (at
    `import ppl`), not only at exit: a compile helper started meanwhile (ppl/compiler/ahead.py)
    reads them instead of generating them all again. The process here ends without its exit
    handlers (os._exit), so only that early write can have made the file."""
    code = ("import glob, os, sys, ppl\n"
            "from ppl.kernels._cache import cache_root, kernels_version\n"
            "print(len(glob.glob(str(cache_root() / 'numba' / kernels_version() / 'declared-*.marshal'))))\n"
            "sys.stdout.flush()\n"
            "os._exit(0)\n")
    env = {**os.environ, "PPL_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "1", (out.stdout, out.stderr[-3000:])


def test_a_cache_folder_removed_while_running_is_made_again(tmp_path, monkeypatch):
    """Numba makes a function's cache folder (and checks that it can write there) when it
    decorates the function; ppl's locator does that once per folder in a process, and again when
    the folder has gone since (a user or a test removed the cache folder mid-session)."""
    import inspect

    from numba.core import caching

    from ppl.kernels.cpu import rows
    monkeypatch.setenv("PPL_CACHE_DIR", str(tmp_path / "cache"))
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    locator = next(c for c in impl._locator_classes if getattr(c, "_ppl", False))
    fn = rows.fill.py_func
    first = locator.from_function(fn, inspect.getfile(fn))
    first.ensure_cache_path()
    path = first.get_cache_path()
    assert os.path.isdir(path) and path.startswith(str(tmp_path))
    shutil.rmtree(tmp_path / "cache")
    locator.from_function(fn, inspect.getfile(fn)).ensure_cache_path()
    assert os.path.isdir(path)


def test_the_warning_is_one_line_when_the_error_spans_two(tmp_path, monkeypatch):
    """Garbled bytes can raise pickle's two-line error ("A load persistent id instruction was
    encountered,\\nbut ..."): the warning stays one line, naming the file, the error and the fix."""
    import pickle
    import warnings

    import ppl
    from ppl.kernels import _cache
    monkeypatch.setattr(_cache, "_reported", set())   # the first damage of this process (one warning per run)
    path = tmp_path / "record"
    path.write_bytes(b"P0\n.")
    with pytest.raises(pickle.UnpicklingError) as e:
        pickle.loads(path.read_bytes())
    assert "\n" in str(e.value)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _cache.report_damage(path, e.value)
    (msg,) = [str(x.message) for x in w if issubclass(x.category, ppl.CacheWarning)]
    assert "\n" not in msg and str(path) in msg and "persistent_load" in msg and "rebuilt" in msg


def test_swapped_data_files_of_two_kernels_are_misses(filled, tmp_path):
    """Each swapped file holds another function's entry (readable, so Numba would load it as the
    function's code, or fail on its signature): both are misses, recompiled and rewritten; the
    run gives the undamaged numbers with one warning, the next run none."""
    src, cold = filled
    cache = tmp_path / "cache"
    shutil.copytree(src, cache)
    a, b = sorted(_version_dir(cache).rglob("*.nbc"), key=lambda f: f.stat().st_size)[-2:]
    ta, tb = a.read_bytes(), b.read_bytes()
    a.write_bytes(tb)
    b.write_bytes(ta)
    first, err = _run(cache)
    assert first["values"] == cold["values"], (first, cold)
    warned = [line for line in err.splitlines() if "CacheWarning" in line]
    assert len(warned) == 1 and "the entry holds" in warned[0], err[-3000:]
    again, err = _run(cache)
    assert again["values"] == cold["values"] and "CacheWarning" not in err, err[-3000:]


FULL_DISK = textwrap.dedent('''
    import errno
    from numba.core import caching

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    caching.IndexDataCacheFile.save = full    # every save of compiled code fails, as on a full disk
''')


READ_ONLY = textwrap.dedent('''
    import builtins, errno, os
    _ROOT = os.path.realpath(os.environ["PPL_CACHE_DIR"])

    def _under(p):
        try:
            return os.path.realpath(os.fspath(p)).startswith(_ROOT)
        except TypeError:
            return False

    def _refuse(p):
        raise PermissionError(errno.EROFS, "Read-only file system", os.fspath(p))
    _open, _os_open = builtins.open, os.open

    def _ro_open(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") and _under(file):
            _refuse(file)
        return _open(file, mode, *a, **k)

    def _ro_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _under(path):
            _refuse(path)
        return _os_open(path, flags, *a, **k)
    builtins.open, os.open = _ro_open, _ro_os_open

    def _wrap(f):
        def g(p, *a, **k):
            if _under(p) and not (f.__name__ in ("mkdir", "makedirs") and os.path.isdir(p)):
                _refuse(p)
            return f(p, *a, **k)
        return g
    for _name in ("replace", "rename", "remove", "unlink", "mkdir", "makedirs", "rmdir", "utime", "chmod"):
        setattr(os, _name, _wrap(getattr(os, _name)))   # a read-only mount: every write under the cache refused
''')


def test_a_read_only_cache_half_deleted_is_not_fatal(filled, tmp_path):
    """Every write under the cache folder refused (as on a read-only mount, which root's chmod
    does not give), a filled folder with half its compiled files deleted (what it has loads, the
    rest compiles in memory): the run completes with the undamaged numbers and one warning saying
    how to fix it. (A cache that cannot be written at all, cold: the next test.)"""
    src, cold = filled
    half = tmp_path / "half"
    shutil.copytree(src, half)
    for f in sorted(half.rglob("*.nbc"))[::2]:
        f.unlink()
    for cache in (half,):
        got, err = _run(cache, READ_ONLY)
        assert got["values"] == cold["values"], (cache, got, cold)
        warned = [line for line in err.splitlines() if "CacheWarning" in line]
        assert len(warned) == 1 and "cannot be written" in warned[0] and "Read-only file system" in warned[0], err[-3000:]


def test_a_cache_that_cannot_be_written_is_not_fatal(filled, tmp_path):
    """A cache folder that cannot be made (its parent a file) and a disk full at every save of
    compiled code: each run completes with the undamaged numbers and one warning saying how to
    fix it (the first compiles into a temporary folder, the second keeps its code in memory)."""
    _, cold = filled
    (tmp_path / "a_file").write_text("")
    for cache, prelude, says in ((tmp_path / "a_file" / "cache", "", "NotADirectoryError"),
                                 (tmp_path / "full", FULL_DISK, "No space left on device")):
        got, err = _run(cache, prelude)
        assert got["values"] == cold["values"], (got, cold)
        warned = [line for line in err.splitlines() if "CacheWarning" in line]
        assert len(warned) == 1 and "cannot be written" in warned[0] and says in warned[0], err[-3000:]
        assert "set PPL_CACHE_DIR to a writable folder" in warned[0]
