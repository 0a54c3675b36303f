"""A kernel body's source read from its lines (kernels/source.py) against `inspect`, and the
generated kernels' code at the body's lines of its file (kernels/declare.py)."""
import ast
import inspect
import textwrap

import pytest

from ppl.kernels import declare, families
from ppl.kernels.source import body_source, body_tree, moved, parsed, statements


def _bodies():
    for m in families.modules():
        for name, k in declare.declared(m).items():
            d = getattr(k, "__declared__", None)
            if d is not None and getattr(d.body, "__source__", None) is None:
                yield name, d


def test_every_declared_body_reads_as_inspect_reads_it():
    """Oracle: `inspect.getsource`, text for text, for every body of every family."""
    seen = 0
    for name, d in _bodies():
        assert body_source(d.body) == inspect.getsource(d.body), name
        seen += 1
    assert seen > 200


def _margin(x):
    y = """
a line at the left margin"""
    return len(y) + x


def _decorated(f):
    return f


@_decorated
def _two_lines_of_arguments(a,
                            b):
    # a comment inside
    c = (a +
         b)
    return c   # the last line

# a comment after the function, at the margin


def test_a_line_at_the_left_margin_is_read_as_inspect_reads_it():
    """A string's line at the margin ends the scan early: the scanned text does not parse, and
    `parsed` reads the body as inspect does (test of the test: the scan alone is cut short)."""
    assert body_source(_margin) != inspect.getsource(_margin)
    with pytest.raises(SyntaxError):
        ast.parse(textwrap.dedent(body_source(_margin)))
    assert ast.dump(parsed(_margin)) == ast.dump(ast.parse(textwrap.dedent(inspect.getsource(_margin))).body[0])
    again = parsed(_margin)   # parsed again from the text kept: a new tree, the same, lines and all
    assert again is not parsed(_margin)
    assert ast.dump(again, include_attributes=True) == ast.dump(body_tree(_margin), include_attributes=True)
    again.body.clear()   # a tree of its own: the shared one is untouched
    assert body_tree(_margin).body
    assert body_source(_two_lines_of_arguments) == inspect.getsource(_two_lines_of_arguments)


def test_generated_code_sits_at_the_bodys_lines():
    """Oracle: the tree moved by `ast.increment_lineno`, compiled: the same code objects, line
    tables and positions included, for every pasted kernel. Test of the test: moved one line
    less, they differ."""
    checked = 0
    for name, d in _bodies():
        src = (f"def {name}({', '.join(d.args)}):\n"
               + declare._LOOPS[d.shape].format(over=d.over, K=d.K, n=d.n, args=", ".join(d.args)))
        tree = declare._pasted(d.body, src, list(d.lead))
        if tree is None:
            continue
        code, pasted = declare._generate(d.body, src, list(d.lead))
        assert pasted
        first = d.body.__code__.co_firstlineno
        fn, = [c for c in code.co_consts if inspect.iscode(c)]
        want, = [c for c in compile(ast.increment_lineno(tree, first - 1), fn.co_filename, "exec").co_consts
                 if inspect.iscode(c)]
        assert (fn.co_firstlineno, list(fn.co_positions()), fn.co_code) == \
            (want.co_firstlineno, list(want.co_positions()), want.co_code), name
        off, = [c for c in moved(compile(declare._pasted(d.body, src, list(d.lead)), fn.co_filename, "exec"),
                                 first - 2).co_consts if inspect.iscode(c)]
        assert list(off.co_positions()) != list(want.co_positions())
        checked += 1
    assert checked > 200


def test_the_statements_walk_finds_what_a_full_walk_finds():
    """Oracle: `ast.walk`, for the statements that keep a body from being pasted."""
    kinds = (ast.Return, ast.Global, ast.Nonlocal)
    for name, d in _bodies():
        fdef = parsed(d.body)
        assert any(isinstance(n, kinds) for n in statements(fdef.body)) == \
            any(isinstance(n, kinds) for n in ast.walk(ast.Module(body=fdef.body, type_ignores=[]))), name
    fdef = ast.parse("def f(x):\n    try:\n        pass\n    except E:\n        if x:\n            return 1\n").body[0]
    assert any(isinstance(n, ast.Return) for n in statements(fdef.body))
