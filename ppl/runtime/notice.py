"""One line on the screen while a compile runs long: a step's first call compiles it (or loads
it from the disk cache, which is quick), and a user's first script would otherwise sit silent
for as long as Numba works. `compiling(what)` says so once the call has taken AFTER seconds (and
that `ppl warmup` compiles ppl's kernels ahead: a first script of one's own then takes seconds
less), and how long it took when it ends; a call that ends sooner says nothing."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

AFTER = 2.0   # seconds before the line appears


# why a CPU step's first call compiles long, and what helps
CPU_NOTE = ("a new step's first call; the disk cache keeps it for later runs; `ppl warmup` compiles ppl's kernels "
            "ahead, once")


@contextmanager
def compiling(what: str, write=None, after: float = AFTER, note: str = CPU_NOTE):
    """Around a call that may compile `what`: after `after` seconds, one line ("compiling ...",
    then `note` in brackets); at the end, if it was said, the time it took. write: where lines go
    (a progress bar's write, so the bar is not broken), else standard error."""
    def say(line):
        if write is not None:
            write(line)
        else:
            print(line, file=sys.stderr, flush=True)
    t0, said = time.perf_counter(), []

    def start():
        said.append(True)
        say(f"ppl: compiling {what} ({note}) ...")
    timer = threading.Timer(after, start)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if said:
            say(f"ppl: compiled {what} in {time.perf_counter() - t0:.1f} s")
