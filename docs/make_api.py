"""Write docs/API.md, ppl's API reference, from the docstrings of its public names.

    python docs/make_api.py            # rewrite docs/API.md
    python docs/make_api.py --check    # exit 1 when docs/API.md is not what the code gives

The public names are `ppl.__all__` and the public modules (`ppl.dist`, `ppl.optim`, `ppl.data`,
`ppl.diagnostics`, `ppl.distributed`); a class brings its public methods and properties. Each
entry is its signature and its whole docstring. A public name without a docstring is a warning,
and `tests/cli/test_api_docs.py` fails on any warning, as it does when API.md is out of date.
"""
from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("dist", "optim", "data", "diagnostics", "distributed")   # ppl.<name>: documented name by name


def _doc(obj) -> str | None:
    d = inspect.getdoc(obj)
    return d.strip() if d else None


def _signature(name: str, obj) -> str:
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def _public(module) -> list:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [k for k, v in vars(module).items() if not k.startswith("_") and callable(v)
                 and getattr(v, "__module__", "").startswith("ppl")]
    return list(names)


def _entry(out: list, warnings: list, qual: str, obj, level: int = 3) -> None:
    out.append(f"{'#' * level} `{_signature(qual, obj) if callable(obj) else qual}`\n")
    doc = _doc(obj)
    if doc is None:
        warnings.append(f"{qual} has no docstring")
        doc = "(no docstring)"
    out.append("```text\n" + doc + "\n```\n")
    if isinstance(obj, type):
        members = {}
        for klass in reversed(obj.__mro__):   # its own and its ppl bases' (Program's mixins)
            if klass.__module__.startswith("ppl"):
                members.update(vars(klass))
        for name, member in sorted(members.items()):
            if name.startswith("_"):
                continue
            if isinstance(member, property):
                out.append(f"{'#' * (level + 1)} `{qual}.{name}` (property)\n")
                d = _doc(member)
                if d is None:
                    warnings.append(f"{qual}.{name} has no docstring")
                out.append("```text\n" + (d or "(no docstring)") + "\n```\n")
            elif isinstance(member, (types.FunctionType, staticmethod, classmethod)):
                fn = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                _entry(out, warnings, f"{qual}.{name}", fn, level + 1)


def build() -> tuple[str, list]:
    """(API.md's text, the warnings)."""
    import ppl
    out = ["# ppl API reference\n",
           "Generated from the docstrings by `python docs/make_api.py` (tests/cli/test_api_docs.py checks it is "
           "current). The guides: README.md; the map of the code: docs/ARCHITECTURE.md.\n"]
    warnings: list = []
    out.append("## ppl\n")
    for name in ppl.__all__:
        obj = getattr(ppl, name)
        if isinstance(obj, types.ModuleType) or name in MODULES or name == "estimators":
            continue
        _entry(out, warnings, f"ppl.{name}", obj)
    out.append("## ppl.estimators\n")
    from ppl.estimators.context import BUILT_IN
    out.append("```text\nThe registry of gradient estimators, name -> estimator (ppl.register_estimator adds "
               "yours); the built-in ones: " + ", ".join(sorted(BUILT_IN)) + ".\n```\n")
    for mod_name in MODULES:
        module = getattr(ppl, mod_name, None)
        if module is None:   # a module imported by name only (ppl.distributed)
            __import__(f"ppl.{mod_name}")
            module = sys.modules[f"ppl.{mod_name}"]
        out.append(f"## ppl.{mod_name}\n")
        doc = _doc(module)
        if doc is None:
            warnings.append(f"ppl.{mod_name} has no module docstring")
        else:
            out.append("```text\n" + doc + "\n```\n")
        for name in _public(module):
            _entry(out, warnings, f"ppl.{mod_name}.{name}", getattr(module, name))
    return "\n".join(out), warnings


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text, warnings = build()
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    path = HERE / "API.md"
    if "--check" in argv:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print("docs/API.md is out of date: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 1 if warnings else 0
    path.write_text(text)
    print(f"wrote {path} ({len(text.splitlines())} lines, {len(warnings)} warnings)")
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main())
