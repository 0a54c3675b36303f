"""A plate's size N as data: m.plate(name) without size leaves N to the data a program is fit
on (Program.set_plate_size compiles the step again with it; fit calls size_plate)."""
from __future__ import annotations

import warnings

import numpy as np

from .. import validate as V
from ..errors import ModelError


class PlateSize:
    """Program's plate size (a mixin of ppl.runtime.program.Program)."""

    def unsized_plate(self) -> str | None:
        """The name of the model's plate when its size N is not set yet (m.plate(name) without
        size, before a fit), else None."""
        plates = getattr(self.model, "plates", None) or {}
        return next((k for k, v in plates.items() if v is None), None)

    def check_plate_sized(self) -> None:
        """A ModelError naming the plate and the fix while its size is not set."""
        plate = self.unsized_plate()
        if plate is not None:
            raise ModelError(f"model '{self.model.name}': plate {plate!r} has no size yet (m.plate({plate!r}) without "
                             f"size=): ppl.fit sets it to the rows it trains on; else call prog.set_plate_size(N) "
                             f"with the data set's rows, or give m.plate({plate!r}, size=N)")

    def set_plate_size(self, n: int) -> None:
        """Set the plate's size N (the rows of the data set; m.plate(name) without size leaves it
        to fit, which calls this with its data's rows) and compile the step again with it: the
        same estimators, layout, parameters and state. Nothing to do when N is already n."""
        plates = getattr(self.model, "plates", None) or {}
        if not plates:
            raise ModelError(f"set_plate_size: model '{self.model.name}' has no plate")
        (name, size), = plates.items()
        n = V.integer(n, "set_plate_size: n", lo=1, hi=1 << 62)
        if size == n:
            return
        if self.target != "cpu":
            raise ModelError(f"set_plate_size: the step of the {self.target} target is not compiled again; give the "
                             f"plate's size in the model, m.plate({name!r}, size={n})")
        est = {k.name: (ch.estimator, dict(ch.options)) for k, (ch, _) in self.choices.items()}
        self.model.plates[name] = n
        try:
            new = self.model.compile_with(self.options.replace(estimators=est, policy="unbiased"))
        except BaseException:
            self.model.plates[name] = size
            raise
        self.analysis, self.module, self.source, self.entry = new.analysis, new.module, new.source, new.entry
        self._twins = {}
        self.check_steps(self._guard is not None)


def size_plate(prog, data) -> None:
    """A plate declared without size (m.plate(name)) takes the rows of the data fit trains on:
    set at the first fit, and again when a later fit's data has other rows (never a size the
    model gave)."""
    plates = getattr(prog.model, "plates", None) or {}
    if not plates:
        return
    if not (prog.unsized_plate() or getattr(prog, "plate_from_data", False)):   # a size the model gave
        (name, size), = plates.items()
        rows = data_rows(data)
        if rows is not None and rows != size:
            warnings.warn(f"plate {name!r} has size {size} but fit's data has {rows} rows: the per-row costs are "
                          f"weighted as for a data set of {size} rows ({size} / batch); give size={rows}, or leave "
                          f"the size out (m.plate({name!r})) to take it from the data", stacklevel=3)
        return
    if data is None:
        raise ModelError(f"fit: plate {next(iter(plates))!r} has no size and there is no data to take it from; give "
                         f"m.plate(name, size=N)")
    prog.set_plate_size(data_rows(data))
    prog.plate_from_data = True


def data_rows(data):
    """The rows of fit's data (its first array's), or None without data."""
    if data is None:
        return None
    first = next(iter(data.values())) if isinstance(data, dict) else data
    return int(np.shape(first)[0]) if np.ndim(first) == 2 else 1
