"""docs/ARCHITECTURE.md is a map of the code as it is: these tests read the page and the tree.

The page's format, which they parse:
  * "## Layers" holds sections "### <n>. <layer> ..." in import order; under each, entries
    "- `path`, `path` — what they do": the backticked paths before the dash are the entry's modules.
  * "## To add ..." holds one section "### <what>" per kind of addition; each entry
    "- `path`, `path` — why" names files to edit. A path with `<name>` in it stands for a new file
    like the existing ones it matches (`<...>` read as a wildcard: at least one must exist).
The checks: every module of ppl/ (subpackages included) and of kernels/ is named in the map, exactly
once, and every named module exists; each layer imports only its own layer and the layers above
it in the list (the import graph of tests/project/test_layers.py); every path of a "To add" list exists;
the page has at most MAX_LINES lines.
"""
from __future__ import annotations

import re
from pathlib import Path

import test_layers

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 250
KINDS = ("An op", "A law", "An estimator", "A kernel", "A user's estimator")   # the "To add" lists

ENTRY = re.compile(r"^- (.*?)(?: — |$)")     # "- `a`, `b` — text": the part before the dash
PATH = re.compile(r"`([^`\s]+)`")


def _sections(level: str, lines):
    """(heading text, [lines]) for each heading of `level` ("## " or "### ") in lines."""
    out = []
    for line in lines:
        if line.startswith(level):
            out.append((line[len(level):].strip(), []))
        elif out:
            out[-1][1].append(line)
    return out


def _top(name: str):
    lines = DOC.read_text().splitlines()
    found = [body for head, body in _sections("## ", lines) if head.startswith(name)]
    assert found, f"docs/ARCHITECTURE.md has no section '## {name}' (the format this test parses: its docstring)"
    return found[0]


def _entries(body):
    """[(paths, line)] of the "- `path` — text" entries in body."""
    out = []
    for line in body:
        m = ENTRY.match(line)
        if m:
            out.append((PATH.findall(m.group(1)), line))
    return out


def layers():
    """[(layer heading, [module paths])] of the map, in its order."""
    out = []
    for head, body in _sections("### ", _top("Layers")):
        mods = [p for paths, _ in _entries(body) for p in paths]
        out.append((head, mods))
    return out


def tree_modules() -> set:
    return ({str(f.relative_to(ROOT)) for f in (ROOT / "ppl").rglob("*.py")} |
            {str(f.relative_to(ROOT)) for f in (ROOT / "kernels").rglob("*.py")})


def _module_name(path: str) -> str:
    """The import-graph node (tests/project/test_layers.py) of a file of the map."""
    if path.startswith("kernels/"):
        return "ppl.kernels"
    parts = path[:-len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def test_the_page_is_short():
    n = len(DOC.read_text().splitlines())
    assert n <= MAX_LINES, (f"docs/ARCHITECTURE.md has {n} lines, at most {MAX_LINES}: it is a map; move detail "
                            f"into the module's docstring and measurements into BENCHMARKS.md")


def test_the_map_names_every_module_once():
    named = [p for _, mods in layers() for p in mods]
    assert named, "no module entries found under '## Layers' (entries read: \"- `path` — text\")"
    tree = tree_modules()
    unnamed = sorted(tree - set(named))
    missing = sorted(set(named) - tree)
    twice = sorted({p for p in named if named.count(p) > 1})
    problems = []
    if unnamed:
        problems.append("modules in the tree that the map does not name (add a line under the layer that imports "
                        "them): " + ", ".join(unnamed))
    if missing:
        problems.append("modules the map names that do not exist (renamed or removed? fix the line): "
                        + ", ".join(missing))
    if twice:
        problems.append("modules the map names more than once: " + ", ".join(twice))
    assert not problems, "docs/ARCHITECTURE.md's map and the tree differ:\n  " + "\n  ".join(problems)


def test_the_layers_follow_the_imports():
    rank = {}
    for i, (head, mods) in enumerate(layers()):
        for p in mods:
            rank.setdefault(_module_name(p), (i, head))
    _, lines = test_layers.import_graph()
    wrong = []
    for (a, b), line in lines.items():
        if a in rank and b in rank and rank[b][0] > rank[a][0]:
            wrong.append(f"{a} (layer '{rank[a][1]}') imports {b} (layer '{rank[b][1]}', below it in the map) "
                         f"at line {line}")
    assert not wrong, ("docs/ARCHITECTURE.md lists the layers in import order; these imports go against it (move "
                       "a module to another layer, or the import):\n  " + "\n  ".join(sorted(wrong)))


def test_every_path_to_edit_exists():
    sections = dict(_sections("### ", _top("To add")))
    kinds = {k: next((body for head, body in sections.items() if head.startswith(k)), None) for k in KINDS}
    absent = [k for k, body in kinds.items() if body is None]
    assert not absent, f"'## To add ...' lacks the lists: {absent} (found: {sorted(sections)})"
    problems = []
    for kind, body in kinds.items():
        entries = _entries(body)
        if not entries:
            problems.append(f"'{kind}': no entries (\"- `path` — why\")")
        for paths, line in entries:
            if not paths:
                problems.append(f"'{kind}': an entry names no `path`: {line!r}")
            for p in paths:
                if "<" in p:
                    pattern = re.sub(r"<[^>]*>", "*", p)
                    if not list(ROOT.glob(pattern)):
                        problems.append(f"'{kind}': {p} matches no existing file ({pattern}) to copy")
                elif not (ROOT / p).exists():
                    problems.append(f"'{kind}': {p} does not exist")
    assert not problems, "docs/ARCHITECTURE.md's 'To add ...' lists name paths not in the tree:\n  " + "\n  ".join(
        problems)


def ir_problems(files) -> list:
    """Where the step's IR is written or read as text: an estimator's `ctx.emit` of a line, a
    regular expression or `ast.parse` in the lowering or the target check, an estimator that
    branches on its own name. files: (path, source) pairs."""
    import ast
    out = []
    for path, src in files:
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if path.startswith("ppl/estimators/") and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "emit" and isinstance(node.func.value, ast.Name) and node.func.value.id == "ctx":
                    out.append(f"{path}:{node.lineno}: ctx.emit of text (use ctx.call with a kernel)")
            if path.startswith("ppl/estimators/") and isinstance(node, ast.Compare):
                left = node.left
                if isinstance(left, ast.Attribute) and left.attr == "name" and getattr(left.value, "id", "") == "self":
                    out.append(f"{path}:{node.lineno}: branches on self.name (declare a flag)")
            if path.startswith(("ppl/lowering/", "ppl/targets.py", "ppl/calls.py")):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and any(a.name == "re" for a in node.names):
                    out.append(f"{path}:{node.lineno}: imports re")
                if (isinstance(node, ast.Attribute) and node.attr == "parse" and isinstance(node.value, ast.Name)
                        and node.value.id == "ast"):
                    out.append(f"{path}:{node.lineno}: ast.parse")
    return out


def test_the_step_ir_is_records_not_text():
    """Estimators emit kernel calls as records (ctx.call), no part of the lowering or the target
    check reads generated code with a regular expression or a parser, and no estimator branches
    on its own name; the check finds each of these in a sample (the test of the test)."""
    files = [(str(p.relative_to(ROOT)), p.read_text()) for p in sorted((ROOT / "ppl").rglob("*.py"))]
    assert not ir_problems(files), "\n".join(ir_problems(files))
    bad = [("ppl/estimators/x.py", 'def f(self, ctx):\n    ctx.emit(f"rows.zero1({b})")\n    if self.name == "arm":\n'
                                   '        pass\n'),
           ("ppl/lowering/x.py", "import re\nimport ast\nt = ast.parse(s)\n")]
    assert len(ir_problems(bad)) == 4


# the passes after the walk (and the printers): they read the step's records, never the text those
# records print (the CUDA target check, ppl/targets.py, reads each emitted record's owner and kernel)
AFTER_WALK = ("ppl/lowering/ir.py", "ppl/lowering/stepped.py", "ppl/lowering/launches.py", "ppl/lowering/access.py",
              "ppl/lowering/printer.py")
_TEXT_METHODS = {"startswith", "endswith", "split", "rsplit", "partition", "rpartition", "strip", "lstrip", "rstrip",
                 "splitlines", "find", "rfind"}


def _is_text(node) -> bool:
    """Whether an expression is a record's text: `str(x)` or `x.text`."""
    import ast
    return ((isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str")
            or (isinstance(node, ast.Attribute) and node.attr == "text"))


def record_problems(files) -> list:
    """A class that subclasses str (every record of the step's code prints its text, it is not
    text), anywhere in `files`; and, in the passes after the walk (AFTER_WALK), a test on a
    record's text (`str(x).startswith(...)`, `"..." in x.text`, a split of it)."""
    import ast
    out = []
    for path, src in files:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == "str" for b in node.bases):
                out.append(f"{path}:{node.lineno}: class {node.name} subclasses str")
            if path not in AFTER_WALK:
                continue
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _TEXT_METHODS and _is_text(node.func.value)):
                out.append(f"{path}:{node.lineno}: reads a record's text ({node.func.attr})")
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) \
                    and any(_is_text(c) for c in node.comparators):
                out.append(f"{path}:{node.lineno}: searches a record's text (in)")
    return out


def test_the_step_ir_records_print_text_and_the_passes_read_records():
    """No record of the step's code is a str (ppl/ and kernels/ define no str subclass), and no
    pass after the walk tests the text a record prints; the check finds each in a sample (the
    test of the test)."""
    files = [(str(p.relative_to(ROOT)), p.read_text()) for d in ("ppl", "kernels") for p in sorted((ROOT / d).rglob("*.py"))]
    assert not record_problems(files), "\n".join(record_problems(files))
    bad = [("ppl/calls.py", "class Call(str):\n    pass\n"),
           ("ppl/lowering/stepped.py", 'if str(line).strip().startswith("if "):\n    pass\nok = "else" in st.text\n'
                                       'head, _, tail = str(line).partition(":")\n'),
           ("ppl/lowering/walk.py", 'if str(line).startswith("if "):\n    pass\n')]   # the walk may
    assert len(record_problems(bad)) == 4


# the flags the default Estimator.row_shape is made from: past it, its RowShape says what they say
ROW_FLAGS = frozenset({"branch_rows", "evaluates_below", "alternative_row", "shares_rows"})


def flag_reads(src: str, flags=None) -> list:
    """The lines of `src` that read one of `flags` of an estimator (default: every flag, a boolean
    or None class attribute of estimators.protocol.Estimator, and its rows, `rows` and
    `expansion`): the row plan asks an estimator for its RowShape only."""
    import ast
    from ppl.estimators.protocol import Estimator
    if flags is None:
        flags = {k for k, v in vars(Estimator).items() if not k.startswith("_") and (isinstance(v, bool) or v is None)}
        flags |= {"rows", "expansion"}
    return [node.lineno for node in ast.walk(ast.parse(src)) if isinstance(node, ast.Attribute) and node.attr in flags]


def test_the_row_plan_reads_row_shapes_not_estimator_flags():
    """lowering/rows.py reads each node's estimator through its RowShape (Estimator.row_shape),
    never a flag, and no other lowering module reads a flag the RowShape is made from; the check
    finds a flag, and an estimator's rows read directly, in a sample."""
    found = flag_reads((ROOT / "ppl" / "lowering" / "rows.py").read_text())
    assert not found, f"ppl/lowering/rows.py reads estimator flags at lines {found}"
    for path in sorted((ROOT / "ppl" / "lowering").glob("*.py")):
        found = flag_reads(path.read_text(), ROW_FLAGS)
        assert not found, f"{path.relative_to(ROOT)} reads estimator row flags at lines {found} (read its RowShape)"
    assert flag_reads("if est[n].branch_rows:\n    k = est[n].expansion(info, opts)\nm = n.name\n") == [1, 2]
    assert flag_reads("if est[n].alternative_row:\n    pass\nif est.passes_value_grad:\n    pass\n", ROW_FLAGS) == [1]
