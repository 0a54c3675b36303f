"""Kernel launches captured once as a CUDA graph and replayed.

`Replay(fn)` captures the launches a call of `fn()` makes (every ppl launcher configures its
kernels through kernels/native/launch.configured, so `on_stream` sends them to cuda.core's graph
builder, which numba-cuda takes as a launch stream) into a graph; `replay.run(n)` launches the
graph n times and waits once. A launch of the graph costs about what one kernel launch costs from
Python, however many kernels it holds.

A graph keeps each launch's arguments as they were at capture: `fn` must launch on the same
arrays every time and read whatever changes from device arrays (kernels/cuda/clock.py), allocate
nothing, copy nothing to or from the host, and have launched every kernel once before (a kernel
compiled during capture is not captured). Where no graph can be made (the CUDA simulator, no
cuda.core, a capture the driver refuses) `run(n)` calls `fn()` n times, the same launches one by
one, and `why` says why.
"""
from __future__ import annotations

from ..kernels.native.launch import on_stream


class Replay:
    def __init__(self, fn):
        self.fn = fn
        self.graph = None
        self.stream = None
        self.why = self._capture()

    def _capture(self) -> str | None:
        from numba import config, cuda
        if config.ENABLE_CUDASIM:
            return "the CUDA simulator runs no graphs"
        try:
            try:
                from cuda.core import Device
            except ImportError:
                from cuda.core.experimental import Device
        except ImportError:
            return "cuda.core is not installed (pip install 'numba-ppl[cuda]')"
        try:
            dev = Device(cuda.get_current_device().id)
            dev.set_current()
            stream = dev.create_stream()
            builder = stream.create_graph_builder()
            builder.begin_building()
            try:
                with on_stream(builder):
                    self.fn()
            finally:
                builder.end_building()
            self.graph, self.stream = builder.complete(), stream
        except Exception as exc:   # a capture the driver or numba-cuda refuses: the launches one by one
            return f"the capture failed ({type(exc).__name__}: {exc})"
        return None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def run(self, n: int) -> None:
        """fn's launches n times over, then wait for them."""
        if self.graph is None:
            for _ in range(n):
                self.fn()
            return
        from numba import cuda
        cuda.synchronize()   # what the host copied on the default stream has arrived
        for _ in range(n):
            self.graph.launch(self.stream)
        self.stream.sync()
