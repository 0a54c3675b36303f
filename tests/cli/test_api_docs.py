"""The API reference (docs/API.md) is generated from the docstrings by docs/make_api.py: every
public name has a docstring (a missing one is a warning, and a warning fails here), and the
committed file is what the code gives (else: python docs/make_api.py)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_api_reference_builds_without_warnings_and_is_current():
    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api.py")
    make_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_api)
    text, warnings = make_api.build()
    assert not warnings, warnings
    assert text == (ROOT / "docs" / "API.md").read_text(), "docs/API.md is out of date: run python docs/make_api.py"
    for name in ("ppl.Model", "ppl.Program.render", "ppl.fit", "ppl.dist.Normal", "ppl.optim.Adam", "ppl.data.digits",
                 "ppl.distributed.sweep", "ppl.diagnostics.gradient_stats", "ppl.Embed"):
        assert f"`{name}" in text, name
