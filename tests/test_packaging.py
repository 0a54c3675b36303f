"""The built wheel installs kernels/ and models/ as ppl.kernels and ppl.models (never as
generic top-level packages) with the bundled data, and imports from a throw-away venv."""
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_wheel_layout_and_import(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "-w", str(tmp_path / "dist"), "-q"], check=True)
    wheel, = (tmp_path / "dist").glob("ppl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("ppl-")}
    assert tops == {"ppl"}, tops
    assert "ppl/kernels/rng.py" in names and "ppl/models/sbn.py" in names
    assert "ppl/models/data/digits.npz" in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True)
    code = ("import ppl, ppl.kernels, ppl.models, ppl.kernels.rng\n"
            "from ppl.data import digits\n"
            "print(ppl.kernels.__file__); print(ppl.models.__file__); print(digits()['train_x'].shape)\n")
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    lines = out.strip().splitlines()
    assert all(str(env_dir) in line for line in lines[:2]), lines
    assert lines[2] == "(1500, 64)"
