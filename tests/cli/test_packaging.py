"""The built wheel installs kernels/ and models/ as ppl.kernels and ppl.models (never as
generic top-level packages) with the bundled data, imports from a throw-away venv that sees
nothing outside the test venv (no system site-packages), and keeps Numba's cache files out
of site-packages, so an uninstall leaves no `ppl` folder behind (such a folder of cache files
would be imported as an empty namespace package shadowing a later install); `import ppl` in the
clone's root beside an installed copy finds the tree's kernels/ and models/."""
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _throwaway_venv(env_dir: Path) -> Path:
    """A venv without system site-packages; ppl's dependencies come from the test venv's
    site-packages through a path file (its .pth hooks, e.g. an editable ppl, do not run)."""
    venv.EnvBuilder(system_site_packages=False, with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    inner = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(inner, "zz_test_deps.pth").write_text("\n".join(sorted(outer)) + "\n")
    return py


def test_wheel_layout_import_and_clean_uninstall(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "-w", str(tmp_path / "dist"), "-q"], check=True)
    wheel, = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith("numba_ppl-"), wheel.name   # `ppl` on PyPI is another project
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("numba_ppl-")}
    assert tops == {"ppl"}, tops
    assert "Name: numba-ppl" in zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode().splitlines()
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
    assert "ppl = ppl.cli:main" in entry_points.decode(), entry_points
    assert "ppl/kernels/math/rng.py" in names and "ppl/kernels/cpu/core.py" in names and "ppl/models/sbn.py" in names
    assert "ppl/kernels/cuda/core.py" in names and "ppl/training/fit.py" in names and "ppl/compiler/ahead.py" in names
    assert "ppl/models/data/digits.npz" in names

    env_dir = tmp_path / "venv"
    py = _throwaway_venv(env_dir)
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    env = {**os.environ, "PPL_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    code = ("import numpy as np, ppl, ppl.kernels, ppl.models, ppl.kernels.math.rng\n"
            "from ppl.training.data import digits\n"
            "from ppl.kernels.cpu import rows as cpu_rows\n"
            "cpu_rows.zero1(np.ones(3))\n"   # a cached kernel: Numba writes its cache files
            "print(ppl.kernels.__file__); print(ppl.models.__file__); print(digits()['train_x'].shape)\n")
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path,
                         env=env).stdout
    lines = out.strip().splitlines()
    assert all(str(env_dir) in line for line in lines[:2]), lines
    assert lines[2] == "(1500, 64)"
    pkg = Path(lines[0]).parent.parent
    assert not list(pkg.rglob("*.nbi")), "Numba cache files were written inside site-packages"
    assert list((tmp_path / "cache" / "numba").rglob("*.nbi")), "no Numba cache files in the ppl cache folder"

    # the clone's root beside the install: its ppl/ shadows the installed one and finds kernels/
    # and models/ beside it (ppl/__init__.py), so the first Python line of a user there works
    code = ("import ppl, ppl.optim, ppl.kernels, ppl.models\nfrom ppl.data import digits\n"
            "print(ppl.__file__); print(ppl.kernels.__file__); print(ppl.models.__file__)\n")
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, cwd=ROOT,
                         env=env).stdout.strip().splitlines()
    assert out == [str(ROOT / "ppl" / "__init__.py"), str(ROOT / "kernels" / "__init__.py"),
                   str(ROOT / "models" / "__init__.py")], out

    subprocess.run([str(py), "-m", "pip", "uninstall", "-y", "-q", "numba-ppl"], check=True)
    assert not pkg.exists(), f"uninstall left {sorted(p.name for p in pkg.rglob('*'))[:10]}"
