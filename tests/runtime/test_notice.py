"""A compile that runs long says so (ppl/runtime/notice.py): one line after AFTER seconds and the
time it took at the end; a short call says nothing. The first step of a new program is wrapped:
its line reaches standard error, or the progress bar's write in fit."""
import time
from contextlib import contextmanager

import numpy as np

import ppl
from ppl.runtime import notice


def test_a_long_call_says_so_and_a_short_one_does_not():
    lines = []
    with notice.compiling("model 'x'", write=lines.append, after=0.05):
        time.sleep(0.3)
    assert lines[0].startswith("ppl: compiling model 'x' (a new step's first call")
    assert lines[1].startswith("ppl: compiled model 'x' in ") and lines[1].endswith(" s")
    lines.clear()
    with notice.compiling("model 'y'", write=lines.append, after=5.0):
        pass
    assert lines == []


def test_a_programs_first_call_is_wrapped(monkeypatch, capsys):
    """Every first call of a program's step passes through compiling(); a later one does not."""
    seen = []
    real = notice.compiling

    @contextmanager
    def spy(what, write=None, after=notice.AFTER):
        seen.append(what)
        with real(what, write, after=0.0):   # said at once, whatever the call takes
            time.sleep(0.05)
            yield
    monkeypatch.setattr("ppl.runtime.first_steps.compiling", spy)   # a first call from Python
    with ppl.Model("notice_m") as m:
        x = m.input("x", 1)
        m.cost("c", ppl.total(ppl.Affine(x, 1, name="a")))
    prog = m.compile()
    prog.loss(np.ones((2, 1)))
    prog.loss(np.ones((2, 1)))
    assert seen == ["model 'notice_m'"]
    err = capsys.readouterr().err
    assert "ppl: compiling model 'notice_m'" in err and "ppl: compiled model 'notice_m' in" in err
