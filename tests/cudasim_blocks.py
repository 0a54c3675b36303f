"""The CUDA simulator's thread blocks run with a barrier instead of a polling loop (the test
harness's; ppl itself does not touch the simulator).

Numba's simulator runs each thread of a block as a Python thread. Its `BlockManager.run` finds
the threads blocked in `syncthreads()` by walking every live thread in a loop that never waits:
that loop takes the interpreter lock from the threads doing the work, and in the suite's CUDA
tests it took most of their time (`threading.Thread.is_alive` called millions of times a test).
`install()` replaces that method with one of the same meaning, the threads reporting to a
condition variable instead:
- a `syncthreads()` returns once every thread of the block still running has reached it (a thread
  that has returned takes no part, as in the simulator);
- a thread's exception aborts the others (those waiting raise "abort flag set", as in the
  simulator) and is raised, named by its thread and block;
- the block's threads start, in the same order, as the simulator's do (`BlockThread`, so the
  fake `cuda` module reads each thread's indices as before).
tests/kernels/test_cudasim_blocks.py checks it, and every CUDA test of the suite runs on it.
"""
from __future__ import annotations

import threading

import numpy as np


def install() -> None:
    from numba.cuda.simulator import kernel as sim

    class Block:
        """What a block's threads share: the condition, the barrier's generation and counts."""

        def __init__(self):
            self.cond = threading.Condition()
            self.generation = 0
            self.waiting = 0
            self.finished = 0

    class BarrierThread(sim.BlockThread):
        def __init__(self, f, manager, block_point, thread_point, debug, block):
            super().__init__(f, manager, block_point, thread_point, debug)
            self.block = block

        def run(self):
            try:
                super().run()   # the simulator's: an exception is kept in self.exception
            finally:
                with self.block.cond:
                    self.block.finished += 1
                    self.block.cond.notify_all()

        def syncthreads(self):
            if self.abort:
                raise RuntimeError("abort flag set on syncthreads call")
            b = self.block
            with b.cond:
                generation = b.generation
                b.waiting += 1
                b.cond.notify_all()
                while b.generation == generation and not self.abort:
                    b.cond.wait()
            if self.abort:
                raise RuntimeError("abort flag set on syncthreads clear")

    def run(self, grid_point, *args):
        block = Block()
        threads = []

        def target():
            self._f(*args)
        for block_point in np.ndindex(*self._block_dim):
            t = BarrierThread(target, self, grid_point, block_point, self._debug, block)
            threads.append(t)
            t.start()
        with block.cond:
            while True:
                failed = next((t for t in threads if t.exception), None)
                if failed is not None:
                    for t in threads:
                        t.abort = True
                    block.generation += 1
                    block.cond.notify_all()
                    break
                live = len(threads) - block.finished
                if live == 0:
                    break
                if block.waiting == live:   # every running thread at the barrier: release them
                    block.waiting = 0
                    block.generation += 1
                    block.cond.notify_all()
                block.cond.wait()
        if failed is not None:
            raise failed.exception[0].with_traceback(failed.exception[1])

    sim.BlockManager.run = run
