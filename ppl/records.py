"""The records a kernel call's arguments are (calls.py's `Call` holds them), and `Code`, the step's
code that is no kernel call: each prints its text (`Printed`, `str()`), none is a `str`.

A buffer of the step (`Buf`: its rows and width), a view of theta, grad or state (`View`) and an
argument of the step (`StepArg`) are names (`Name`: equal to their name's text too, so that a table
keyed by names finds them); `Flat(buffer)` is a one-column buffer passed as its 1D view, `Row(buffer)`
as one row,
`Column(buffer)` a 1D buffer as a one-column array, `Head(buffer, parts)` its first rows; `Const` a
literal; `Code` the parts it was made from by `code(fmt, **values)`. `arg_names` gives the names an
argument holds and where (the printer's and the passes' reading of a record, never of its text);
`substituted` writes a record with names replaced; `text_names` reads a user's own text.
"""
from __future__ import annotations

import io
import keyword
import string
import tokenize

_FMT = string.Formatter()


class Printed:
    """A record of the step's code that prints as its `text`: equal to a record of its type that
    prints the same."""

    text: str

    def __init__(self, text):
        self.text = str(text)

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"{type(self).__name__}({self.text!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.text == self.text

    def __hash__(self):
        return hash(self.text)


class Name(Printed):
    """A name of the step's code (a buffer, a view, an argument of the step): equal to that name's
    text too, so that a table keyed by names finds it."""

    def __eq__(self, other):
        return other == self.text if isinstance(other, str) else isinstance(other, Name) and other.text == self.text

    __hash__ = Printed.__hash__

    def render(self, sub) -> str:
        """The name, or sub(name) where that is not None."""
        return _named(self.text, sub)


def _named(name: str, sub) -> str:
    return sub(name) or name


class Flat(Printed):
    """A one-column buffer passed to a kernel as its 1D view (`x.reshape(x.shape[0])`); the
    row-fused lowering passes the row's one value."""

    def __init__(self, buffer):
        self.buffer = str(buffer)
        self.text = self.render(lambda n: None)

    def render(self, sub) -> str:
        b = _named(self.buffer, sub)
        return f"{b}.reshape({b}.shape[0])"


class Row(Printed):
    """A workspace buffer of one column passed to a kernel laid out as one row (`rows.as_row(x)`,
    its (R, 1) as (1, R)): pass "narrow cells", for a kernel that reads each array at its own
    cell (kernels/one_row.py)."""

    def __init__(self, buffer):
        self.buffer = str(buffer)
        self.text = self.render(lambda n: None)

    def render(self, sub) -> str:
        return f"rows.as_row({_named(self.buffer, sub)})"


class Buf(Name):
    """A buffer of the step, a workspace's or a data input's: its name (its text), its rows
    (Layout's: "R" every row, "D" one per data row, "Dn" n per data row, a number, or a loop's
    per-step storage: lowering.layout.PerStep) and its width (None: one value per row, a 1D
    buffer). Made where the lowering allocates or binds it."""

    def __init__(self, name, rows="R", width=None):
        self.text, self.rows, self.width = str(name), rows, width


class View(Name):
    """A view the step's head binds: a parameter's or its gradient's (of theta / grad) or a state
    value's (of state), `expr` the view's expression."""

    def __init__(self, name, expr):
        self.text, self.expr = str(name), expr


class Const(Printed):
    """A constant of the step's code written as its literal (a number, a tuple of numbers, True or
    False, np.nan): the names it holds (`names`: np of np.nan) are read once per literal."""

    @property
    def names(self) -> tuple:
        known = _CONST_NAMES.get(self.text)
        if known is None:
            known = _CONST_NAMES[self.text] = () if _is_number(self.text) else text_names(self.text)
        return known


_CONST_NAMES: dict = {}


class Code(Printed):
    """Code the lowering writes that is no kernel call (a loop step's rows or offset, a test, a
    user's function called on a row), made by `code`: its `parts`, each a literal piece of text
    (`(False, text)`) or a value it was made from (`(True, value)`: a name, a number, a record of
    calls.py, another Code). Its `names` (as Call.names') are the values', placed, so no
    tokenizer reads it; `render` writes it with names replaced."""

    def __init__(self, parts: tuple):
        self.parts = tuple(parts)
        text, names = "", []
        for is_value, x in self.parts:
            if is_value:
                names += [(n, len(text) + a, len(text) + b) for n, a, b in arg_names(x)]
            text += str(x)
        self.text, self.names = text, tuple(names)

    def render(self, sub) -> str:
        """Its text with each name n of its values written as sub(n) where that is not None."""
        return "".join(substituted(x, sub) if is_value else x for is_value, x in self.parts)


def code(fmt: str, **values) -> Code:
    """`fmt` with its fields replaced by `values` (a name, a number, a record of calls.py or
    another Code); the names are the values' (arg_names). Words of `fmt` itself are keywords or
    attributes (`.shape`): a name is given as a value, so it is recorded."""
    parts = []
    for literal, field, _, _ in _FMT.parse(fmt):
        _check_words(literal, fmt)
        if literal:
            parts.append((False, literal))
        if field is not None:
            parts.append((True, values[field]))
    return Code(tuple(parts))


def substituted(value, sub) -> str:
    """The text of a value of the step's code (a record of calls.py, a name, a number) with each
    name n it holds written as sub(n) where that is not None: a record writes its parts (Code,
    Call: `render`), any other value's names are replaced where arg_names places them (a user's
    text: where the tokenizer does)."""
    render = getattr(value, "render", None)
    if render is not None:
        return render(sub)
    text = str(value)
    out, at = [], 0
    for n, a, b in arg_names(value):
        r = sub(n)
        if r is not None:
            out += [text[at:a], r]
            at = b
    out.append(text[at:])
    return "".join(out)


def _check_words(literal: str, fmt: str):
    """Refuse a name written in code()'s format (a keyword, an attribute or a number is no name)."""
    i = 0
    while i < len(literal):
        j = i
        while j < len(literal) and (literal[j].isalnum() or literal[j] == "_"):
            j += 1
        word = literal[i:j]
        if word and not word[0].isdigit() and not keyword.iskeyword(word) and literal[:i].rstrip()[-1:] != ".":
            raise ValueError(f"code({fmt!r}): {word!r} is a name; give it as a field's value")
        i = max(j, i + 1)


def per_row(c: float) -> Code:
    """c / B: a row's share of a mean over the step's batch of B data rows."""
    return code(f"{float(c)!r} / {{B}}", B="B")


def batch_size() -> Code:
    """float(B): the step's batch size as a float."""
    return code("{float}({B})", float="float", B="B")


def prefix(buffer, count: int) -> Code:
    """buffer[:count], the first `count` rows of a buffer (a global node's draws: one data row's)."""
    return code("{b}[:" + str(int(count)) + "]", b=buffer)


class StepArg(Name):
    """An argument of the step itself that a kernel call passes on (seed, t, row0, B, theta, grad,
    state)."""


STEP_ARGS = ("theta", "grad", "state", "B", "seed", "t", "row0")


class Column(Printed):
    """A 1D buffer passed as the (rows, 1) array a two-dimensional kernel takes (the rows of
    `rows_of`, the same count)."""

    def __init__(self, buffer, rows_of=None):
        rows_of = rows_of or buffer
        self.buffer, self.rows_of = str(buffer), str(rows_of)
        self.text = self.render(lambda n: None)

    def render(self, sub) -> str:
        return f"{_named(self.buffer, sub)}.reshape({_named(self.rows_of, sub)}.shape[0], 1)"


class Head(Printed):
    """The first 1 / `parts` of a buffer's rows (a drawn row's first configuration block)."""

    def __init__(self, buffer, parts: int):
        self.buffer, self.parts = str(buffer), int(parts)
        self.text = self.render(lambda n: None)

    def render(self, sub) -> str:
        b = _named(self.buffer, sub)
        return f"{b}[:{b}.shape[0] // {self.parts}]"


def text_names(text: str) -> tuple:
    """(name, start, end) of every identifier of a line's text that is not an attribute or a
    keyword, read by Python's tokenizer: for text no record describes (a user estimator's line
    or expression; a constant's literal, once)."""
    out, prev = [], None
    starts = [0]
    for line in text.split("\n")[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text + "\n").readline):
            if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string) and prev != ".":
                out.append((tok.string, starts[tok.start[0] - 1] + tok.start[1], starts[tok.end[0] - 1] + tok.end[1]))
            if tok.type == tokenize.OP or tok.type == tokenize.NAME:
                prev = tok.string
    except (tokenize.TokenError, IndentationError):   # a fragment (an opened bracket): names so far
        pass
    return tuple(out)


def arg_names(arg) -> tuple:
    """(name, start, end) of the identifiers of one argument's text, from its record: a name, a
    Flat, Column or Head buffer, a constant, code (calls.code), a number or a tuple of them; text
    of another form (a user's estimator's expression) is read by text_names."""
    of = _NAMES_OF.get(type(arg))
    if of is not None:
        return of(arg)
    if isinstance(arg, (int, float, tuple)):   # a NumPy number
        return ()
    text = str(arg)
    if text.isidentifier() and not keyword.iskeyword(text):
        return ((text, 0, len(text)),)
    return text_names(text)


def _flat_names(arg) -> tuple:
    n = len(arg.buffer)
    return ((arg.buffer, 0, n), (arg.buffer, n + 9, 2 * n + 9))


def _row_names(arg) -> tuple:
    return ((arg.buffer, 12, 12 + len(arg.buffer)),)


def _column_names(arg) -> tuple:
    at = len(arg.buffer) + 9
    return ((arg.buffer, 0, len(arg.buffer)), (arg.rows_of, at, at + len(arg.rows_of)))


def _head_names(arg) -> tuple:
    at = len(arg.buffer) + 2
    return ((arg.buffer, 0, len(arg.buffer)), (arg.buffer, at, at + len(arg.buffer)))


def _none(arg) -> tuple:
    return ()


_NAMES_OF = {bool: _none, int: _none, float: _none, tuple: _none, Const: lambda a: a.names, Code: lambda a: a.names,
             Flat: _flat_names, Row: _row_names, Column: _column_names, Head: _head_names}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return not text.strip().isalpha()   # "nan", "inf": names, not literals
