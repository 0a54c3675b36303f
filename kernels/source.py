"""A kernel body's source and syntax tree, read without `inspect.getsource`'s tokenizing.

The declared kernels (kernels/declare.py) are generated from their bodies' syntax trees, about
three hundred of them when `import ppl` first declares the families in a cache folder; the
row-fused rewrite and the lanes (kernels/rowcode.py, kernels/lanes.py) read the same trees.
`inspect.getsource` finds a function's last line by tokenizing its file from its first line,
much of that generation's time. A body's source here is its lines from its first one to the last
line indented under its `def`; a body that does not parse from that reading (a line of a string
at the left margin) is read by `inspect` again.
"""
import ast
import inspect
import linecache
import textwrap
import types

_TREES = {}
_TEXTS = {}   # body -> the text its tree parses from (a new tree is a parse of it: faster than a deep copy)


def body_source(body, scan=True) -> str:
    """The source text of the function `body` (`inspect.getsource`'s text). `scan`: its file's lines
    from its first (its first decorator's) to the last one indented under its `def`; False:
    `inspect.getsource`'s reading."""
    made = getattr(body, "__source__", None)   # a body made from text (declare.unary)
    if made is not None:
        return made
    if scan:
        code = body.__code__
        lines = linecache.getlines(code.co_filename)
        first = k = code.co_firstlineno - 1
        while k < len(lines) and not lines[k].lstrip().startswith(("def ", "async def ")):
            k += 1   # the decorators
        if k < len(lines):
            indent = len(lines[k]) - len(lines[k].lstrip())
            end = k = k + 1
            while k < len(lines):
                text = lines[k].strip()
                if text and not text.startswith("#"):
                    if len(lines[k]) - len(lines[k].lstrip()) <= indent:
                        break
                    end = k + 1
                k += 1
            return "".join(lines[first:end])
    return inspect.getsource(body)


def parsed(body) -> ast.FunctionDef:
    """A new syntax tree of the function `body`, its lines counted from its first (1)."""
    text = _TEXTS.get(body)
    if text is not None:
        return ast.parse(text).body[0]
    try:
        text = textwrap.dedent(body_source(body))
        tree = ast.parse(text).body[0]
    except SyntaxError:   # a line of the body at the left margin (a string's): read as inspect does
        text = textwrap.dedent(body_source(body, scan=False))
        tree = ast.parse(text).body[0]
    _TEXTS[body] = text
    return tree


def body_tree(body) -> ast.FunctionDef:
    """The body's function definition (parsed once per body; shared, not to be changed: the
    lanes rewrite, kernels/lanes.py, edits a new tree of its own, `parsed`)."""
    t = _TREES.get(body)
    if t is None:
        t = _TREES[body] = parsed(body)
    return t


def in_loops(fn, kinds=(ast.For,)) -> set:
    """The ids of the nodes of `fn` that are a loop of `kinds` or inside one (one walk per loop)."""
    return {id(n) for loop in ast.walk(fn) if isinstance(loop, kinds) for n in ast.walk(loop)}


def statements(stmts):
    """Every statement of `stmts` and of the statements nested in them (compound statements'
    bodies, functions' and classes' too), not the expressions: a walk of far fewer nodes."""
    for node in stmts:
        yield node
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from statements(inner)
        for part in getattr(node, "handlers", None) or getattr(node, "cases", None) or ():
            yield from statements(part.body)


def generator(code) -> bool:
    """Whether the function of `code`, or one defined in it, is a generator or coroutine."""
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR | inspect.CO_COROUTINE):
        return True
    return any(isinstance(c, types.CodeType) and generator(c) for c in code.co_consts)


def moved(code, lines):
    """Compiled `code` with the functions it defines, and theirs, `lines` further down their file
    (a code object counts its lines from its first: moving that moves them all, no walk of a
    syntax tree)."""
    return code.replace(co_consts=tuple(
        moved(c, lines).replace(co_firstlineno=c.co_firstlineno + lines) if isinstance(c, types.CodeType) else c
        for c in code.co_consts))
