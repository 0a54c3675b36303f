"""The passes before the walk return frozen records (ppl/lowering/rows.py `RowPlan`,
ppl/lowering/grads.py `GradientNeeds`) that the compilation record holds and the lowering reads;
the lowering object declares every attribute it has in one place (`Lowering.__init__` and the
`_init_<part>` it calls), the state a part declares for itself no other part reads, and what
Lowering.__init__ itself declares is only the inputs, the step's builder and the signals every
part reads, none of them assigned again: no part reads an attribute another part set."""
from __future__ import annotations

import ast
import dataclasses
import pathlib

import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model
from ppl.compiler.options import CompileOptions
from ppl.compiler.pipeline import Compilation, run_passes
from ppl.lowering.grads import GradientNeeds
from ppl.lowering.rows import RowPlan
from small_models import two_layer_sbn

LOWERING = pathlib.Path(ppl.__file__).parent / "lowering"
# the classes whose instances are the lowering object (Lowering, its parts, the two targets' classes)
PARTS = ("Lowering", "ContextHelpers", "ArrayHelpers", "Views", "Walk", "Loops", "Alternative", "ArrayLowering",
         "RowFusedLowering")
# where the lowering object's attributes are declared: Lowering.__init__ and the parts' own state
# (which it calls; a target's `_init_target`, its own)
OWN_STATE = {("Loops", "_init_loops"), ("Views", "_init_views"), ("Walk", "_init_walk"),
             ("ContextHelpers", "_init_context"), ("ArrayHelpers", "_init_array_helpers"),
             ("Alternative", "_init_alternative"),
             ("ArrayLowering", "_init_target"), ("RowFusedLowering", "_init_target")}
DECLARING = {("Lowering", "__init__"), *OWN_STATE}


def test_the_row_plan_and_gradient_needs_are_frozen_records_the_compilation_holds():
    m = two_layer_sbn("pass_records")
    c = run_passes(Compilation(m, CompileOptions(estimators={"h1": "disarm", "h2": "enumerate"}, samples=2,
                                                 lowering="arrays")))
    assert isinstance(c.plan, RowPlan) and isinstance(c.needs, GradientNeeds)
    assert c.lowering.plan is c.plan and c.lowering.needs is c.needs
    # a parameter followed from compile() to the printer: DisARM pairs, h2 of width 2 enumerated, K = 2
    h, z = m.nodes["h1"], m.nodes["h2"]
    assert c.plan.S == 2 * 2 ** 2 and c.plan.reps == 2 * c.plan.S == len(c.plan.FULL)
    assert c.step.layout.S == c.plan.S and dict(c.plan.row_digit) == {h: (1, 2), z: (2, 4)}
    assert c.needs.req[m.nodes["a1"]] and not c.needs.req[m.nodes["x"]]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.plan.S = 1
    with pytest.raises(TypeError):
        c.plan.lay[h] = c.plan.D1
    with pytest.raises(TypeError):
        c.needs.req[h] = False


def _declared_and_later(sources: dict) -> tuple[set, dict]:
    """The attributes the lowering object's declaring methods set, and, for every other method of
    its parts, the attributes it sets: {attr: [Class.method, ...]}."""
    declared, later = set(), {}
    for text in sources.values():
        for cls in ast.walk(ast.parse(text)):
            if not (isinstance(cls, ast.ClassDef) and cls.name in PARTS):
                continue
            for f in cls.body:
                if not isinstance(f, ast.FunctionDef):
                    continue
                for n in ast.walk(f):
                    if (isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                            and isinstance(n.value, ast.Name) and n.value.id == "self"):
                        if (cls.name, f.name) in DECLARING:
                            declared.add(n.attr)
                        else:
                            later.setdefault(n.attr, []).append(f"{cls.name}.{f.name}")
    return declared, later


def _foreign_uses(sources: dict) -> list:
    """Uses of a part's own state (declared in its `_init_<part>`) outside that part's class."""
    owner = {}
    trees = {name: ast.parse(text) for name, text in sources.items()}
    for tree in trees.values():
        for cls in ast.walk(tree):
            if isinstance(cls, ast.ClassDef):
                for f in cls.body:
                    if isinstance(f, ast.FunctionDef) and (cls.name, f.name) in OWN_STATE:
                        owner.update({n.attr: cls.name for n in ast.walk(f) if isinstance(n, ast.Attribute)
                                      and isinstance(n.ctx, ast.Store)})
    out = []
    for name, tree in trees.items():
        for cls in ast.walk(tree):
            if isinstance(cls, ast.ClassDef) and cls.name in PARTS:
                out += [f"{cls.name} uses {owner[n.attr]}'s self.{n.attr}" for n in ast.walk(cls)
                        if isinstance(n, ast.Attribute) and n.attr in owner and owner[n.attr] != cls.name
                        and isinstance(n.value, ast.Name) and n.value.id == "self"]
    return out


# what Lowering.__init__ may declare, none of it assigned again: the compilation's inputs and
# records, the builder of the step (ir.StepBuilder: the parts write the step and move its insertion
# point, the node's rows and configuration included, only through it), the signals every part
# reads (the row weights, the cost cotangent seeds, a zero row, the configurations the walk
# unrolls) and the lowering's own contexts
INPUTS = {"model", "an", "choices", "samples", "objective", "rng", "plan", "needs", "dtype"}
SIGNALS = {"builder", "rw", "cw", "zero_rows", "configs"}
LOWERING_OWN = {"contexts"}


def _assigned(sources: dict) -> dict:
    """{attr: [Class.method, ...]} of every `self.<attr> = ...` (and `for self.<attr> in`) in the parts."""
    out = {}
    for text in sources.values():
        for cls in ast.walk(ast.parse(text)):
            if isinstance(cls, ast.ClassDef) and cls.name in PARTS:
                for f in cls.body:
                    if isinstance(f, ast.FunctionDef):
                        for n in ast.walk(f):
                            if (isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                                    and isinstance(n.value, ast.Name) and n.value.id == "self"):
                                out.setdefault(n.attr, []).append(f"{cls.name}.{f.name}")
    return out


def _record_fields_read_as_own(sources: dict) -> list:
    """`self.<field>` of a RowPlan or GradientNeeds field in the lowering's parts: what only the
    records hold, read as if the lowering object held it."""
    fields = {f.name for r in (RowPlan, GradientNeeds) for f in dataclasses.fields(r)}
    out = []
    for name, text in sources.items():
        for cls in ast.walk(ast.parse(text)):
            if isinstance(cls, ast.ClassDef) and cls.name in PARTS:
                out += [f"{name}: self.{n.attr}" for n in ast.walk(cls)
                        if isinstance(n, ast.Attribute) and n.attr in fields
                        and isinstance(n.value, ast.Name) and n.value.id == "self"]
    return out


def _sources():
    return {p.name: p.read_text() for p in sorted(LOWERING.glob("*.py"))}


def test_every_attribute_of_the_lowering_is_declared_once_and_parts_keep_their_own_state():
    declared, later = _declared_and_later(_sources())
    undeclared = {a: where for a, where in later.items() if a not in declared}
    assert not undeclared, f"attributes first set outside Lowering.__init__: {undeclared}"
    assert not _record_fields_read_as_own(_sources())
    assert not _foreign_uses(_sources())
    # the test of the test: a part that sets an attribute of its own in a method, and one that
    # reads a row plan's field off the lowering object, are both found
    bad = "class Walk:\n    def lower_forward(self):\n        self.fresh = {}\n        return self.S\n"
    declared, later = _declared_and_later({"bad.py": bad})
    assert later == {"fresh": ["Walk.lower_forward"]} and "fresh" not in declared
    assert _record_fields_read_as_own({"bad.py": bad}) == ["bad.py: self.S"]
    # and a part that reads another part's own state
    peek = "class Views:\n    def _init_views(self):\n        self.vcopy = set()\n" \
           "class ContextHelpers:\n    def buf(self):\n        return self.vcopy\n"
    assert _foreign_uses({"peek.py": peek}) == ["ContextHelpers uses Views's self.vcopy"]


def test_no_part_reads_an_attribute_another_part_set():
    """Lowering.__init__ declares the inputs, the builder and the signals only, and nothing assigns
    them again; every other attribute is a part's own state, which no other part uses (the test
    above): so no part reads an attribute another part set."""
    assigned = _assigned(_sources())
    init = {a for a, where in assigned.items() if "Lowering.__init__" in where}
    assert init == INPUTS | SIGNALS | LOWERING_OWN, init ^ (INPUTS | SIGNALS | LOWERING_OWN)
    again = {a: [w for w in where if w != "Lowering.__init__"] for a, where in assigned.items() if a in init}
    assert not any(again.values()), again
    # the test of the test: an attribute of the lowering's own, and a signal set again, are found
    bad = "class Lowering:\n    def __init__(self):\n        self.extra = 1\n" \
          "class Views:\n    def v(self):\n        self.rw = 'x'\n"
    got = _assigned({"bad.py": bad})
    assert got == {"extra": ["Lowering.__init__"], "rw": ["Views.v"]}


# the code outside the parts that holds the lowering object: the rules (`lowering`, `sl`), the
# estimator contexts (`self._lowering`, `self._sl`) and the estimators' row forms (`sl`)
HOLDERS = ("lowering/rules.py", "lowering/rowcontext.py", "estimators/context.py", "estimators/arm.py",
           "estimators/score.py")


def _held_reads(text: str) -> set:
    """The attributes read off the lowering object by code that holds it (not its methods)."""
    from ppl.lowering import ArrayLowering
    from ppl.lowering.rowfused import RowFusedLowering
    out = set()
    for n in ast.walk(ast.parse(text)):
        if not isinstance(n, ast.Attribute):
            continue
        v = n.value
        held = (isinstance(v, ast.Name) and v.id in ("lowering", "sl")) or (
            isinstance(v, ast.Attribute) and v.attr in ("_lowering", "_sl") and isinstance(v.value, ast.Name))
        if held and not any(callable(getattr(c, n.attr, None)) for c in (ArrayLowering, RowFusedLowering)):
            out.add(n.attr)
    return out


def test_code_holding_the_lowering_reads_only_its_inputs_and_signals():
    root = LOWERING.parent
    reads = {p: _held_reads((root / p).read_text()) for p in HOLDERS}
    bad = {p: r - (INPUTS | SIGNALS) for p, r in reads.items() if r - (INPUTS | SIGNALS)}
    assert not bad, bad
    # the test of the test: a rule reading a part's own state, and a context reading the walk's, are found
    assert _held_reads("def rule(lowering):\n    return lowering.kept[n], lowering.emit(x)\n") == {"kept"}
    assert _held_reads("class C:\n    def f(self):\n        return self._lowering.totals\n") == {"totals"}


def _defined_twice(cls) -> dict:
    """{method: [class, ...]} of a method two classes of cls's bases define: the later one would
    silently hide the other (a part's), or a target's class would override the walk or a part."""
    where = {}
    for c in cls.__mro__[:-1]:
        for name, f in vars(c).items():
            if callable(f) and not name.startswith("__"):
                where.setdefault(name, []).append(c.__name__)
    return {m: owners for m, owners in where.items() if len(owners) > 1}


def test_no_method_is_defined_twice_and_neither_target_overrides_the_walk():
    """The walk (walk.py) is written once; each target's class only answers its hooks: no method
    of a lowering class is defined by two of its classes, so nothing is overridden."""
    from ppl.lowering import ArrayLowering
    from ppl.lowering.rowfused import RowFusedLowering
    for cls in (ArrayLowering, RowFusedLowering):
        assert not _defined_twice(cls), (cls.__name__, _defined_twice(cls))
    # the test of the test: a part's method hidden by another's, and a target overriding the walk
    class Loops:
        def open_loop(self):
            pass

    class Walk:
        def open_loop(self):
            pass

        def forward_node(self, n):
            pass

    class Target(Walk, Loops):
        def forward_node(self, n):
            pass
    assert _defined_twice(Target) == {"open_loop": ["Walk", "Loops"], "forward_node": ["Target", "Walk"]}


def test_the_row_fused_lowering_takes_its_layout_from_the_plan():
    """Width-1 graphs lower row-fused: every node on every row of a drawn row (one layout)."""
    with Model("pass_records_rows") as m:
        x = m.input("x", 1)
        z = Bernoulli("z", logits=Affine(x, 1, name="enc"))
        m.cost("f", ppl.bernoulli_nll(Affine(z, 1, name="dec"), target=x))
    c = run_passes(Compilation(m, CompileOptions(estimators={"z": "disarm"}, dtype=np.float64)))
    assert c.lowering_class.__name__ == "RowFusedLowering" and c.lowering.plan is c.plan
    assert c.plan.S == 2 and not c.plan.lay and list(c.lowering.configs) == [0, 1]
