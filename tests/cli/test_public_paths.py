"""Every dotted `ppl.` name that README.md and docs/*.md mention resolves, in a fresh
interpreter started in the repository's root: a module by `import` (import ppl.optim, import
ppl.distributed, from ppl.data import digits), anything else as an attribute of its module."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = r'''
import importlib, pathlib, re, sys, types
root = pathlib.Path(sys.argv[1])
names = set()
for f in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
    names |= set(re.findall(r"(?<![\w/.-])ppl(?:\.[A-Za-z_]\w*)+", f.read_text()))
bad = []
for n in sorted(names):
    parts = n.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            continue
    try:
        for p in parts[i:]:
            obj = getattr(obj, p)
    except AttributeError:
        bad.append(n + " (no such attribute)")
        continue
    if isinstance(obj, types.ModuleType) and i < len(parts):
        bad.append(n + " (a module, but `import " + n + "` fails)")
from ppl.data import digits
import ppl.optim, ppl.distributed, ppl.training
assert ppl.optim is ppl.training.optim and ppl.distributed is ppl.training.distributed
assert digits is ppl.training.data.digits
print(len(names), "names;", "bad:", bad)
'''


def test_every_public_path_the_docs_name_imports():
    r = subprocess.run([sys.executable, "-c", CHECK, str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("bad: []"), r.stdout
    assert int(r.stdout.split()[0]) > 40, r.stdout      # the docs name many: the scan found them
