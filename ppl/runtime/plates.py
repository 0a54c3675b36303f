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

    def _check_plate_rows(self, data, batch) -> None:
        """A gradient's batch is a subsample of its plate's rows: more rows than the plate's size
        N is refused (the per-row costs are weighted N / batch), as Pyro refuses a subsample
        larger than its plate."""
        plates = {k: v for k, v in (getattr(self.model, "plates", None) or {}).items() if v is not None and v == v}
        if not plates or data is None:
            return
        rows = int(batch) if batch is not None else int(np.shape(next(iter(data.values())))[0]) \
            if isinstance(data, dict) and data else None
        for name, size in plates.items():
            if rows is not None and rows > size:
                raise ModelError(f"grad: plate {name!r} has size {int(size)} but the batch has {rows} rows; a batch is "
                                 f"a subsample of the plate's rows: give at most {int(size)} rows, or declare "
                                 f"m.plate({name!r}, size=N) with the data set's N rows (or without size: ppl.fit "
                                 f"takes it from the data)")

    def set_plate_size(self, n) -> None:
        """Set the plate's size N (the rows of the data set; m.plate(name) without size leaves it
        to fit, which calls this with its data's rows) and compile the step again with it: the
        same estimators, layout, parameters and state. Nothing to do when N is already n.
        n may be the data set itself ({name: array}): N is its rows, and the rows of each group
        of the plates of groups are counted in it (what a per-group term's share is on a batch,
        as fit does; without, a call's own data is its data set)."""
        plates = getattr(self.model, "plates", None) or {}
        if not plates:
            raise ModelError(f"set_plate_size: model '{self.model.name}' has no plate")
        (name, size), = plates.items()
        if isinstance(n, dict):
            self.group_counts = count_groups(self.model, n)
            n = data_rows(n)
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


    @property
    def data_inputs(self) -> list:
        """The inputs a caller passes (the step's inputs without the hidden `_w_<plate>`)."""
        return [n for n in self.layout.inputs if not n.startswith("_w_")]

    @property
    def shares_draws(self) -> bool:
        """Whether rows share draws (a global node, or a node of a plate of groups): draws of
        several samples then need a step each, not rows tiled in one step."""
        an = self.analysis
        return bool(an.global_nodes) or any(n.is_stochastic for n in an.group_of)

    def group_inputs(self, data: dict) -> dict:
        """data with the hidden inputs of the plates of groups (`_w_<plate>`, lowering/arrays.py):
        each row's share 1 / (its group's rows) of its group's terms, the rows counted in the data
        set fit trains on (`group_counts`, set by fit), else in `data` itself (evaluate's, or a
        grad call's: the data set of the call)."""
        hidden = [n for n in self.layout.inputs if n.startswith("_w_") and n not in data]
        if not hidden:
            return data
        groups = self.model.groups
        counts = getattr(self, "group_counts", None) or count_groups(self.model, data)
        data = dict(data)
        for name in hidden:
            g = groups[name[3:]]
            if g.index not in data:
                continue   # Program._inputs names the missing input
            check_index(self.model, g.index, np.asarray(data[g.index]))
            idx = np.asarray(data[g.index]).reshape(-1).astype(np.int64)
            n = counts[g.name][idx]
            if not np.all(n > 0):
                raise ModelError(f"plate '{g.name}': group {int(idx[n <= 0][0])} has no rows in the data set fit "
                                 f"trained on, so its terms have no weight; fit on data holding every group")
            data[name] = (1.0 / n)[:, None]
        return data


def check_index(model, name: str, a: np.ndarray) -> None:
    """A data input that indexes a plate of groups or an Embed's table: whole numbers 0 .. n - 1,
    or a ModelError naming the input, what it indexes and the first offending row."""
    bounds = [(f"plate '{g.name}' of {g.size} groups", g.size) for g in getattr(model, "groups", {}).values()
              if g.index == name]
    bounds += [(f"Embed '{n.name}' of {n.attrs['num']} rows", n.attrs["num"]) for n in model.order
               if n.kind == "embed" and n.inputs[0].name == name]
    for what, size in bounds:
        bad = np.flatnonzero((a != np.floor(a)) | (a < 0) | (a >= size))
        if bad.size:
            raise ModelError(f"input '{name}' indexes {what}: its values must be whole numbers 0 .. {size - 1}; row "
                             f"{int(bad[0])} has {float(a.reshape(-1)[bad[0]])!r}")


def count_groups(model, data: dict) -> dict:
    """{plate of groups: rows per group (an array of its size)} in data; a nested plate's groups
    each inside one group of its parent, else a ModelError naming the group."""
    out = {}
    for g in getattr(model, "groups", {}).values():
        if g.index not in data:
            continue
        idx = np.asarray(data[g.index]).reshape(-1)
        check_index(model, g.index, idx)
        out[g.name] = np.bincount(idx.astype(np.int64), minlength=g.size)
        parent = model.groups[g.parent] if g.parent is not None else None
        if parent is not None and parent.index in data:
            up = np.asarray(data[parent.index]).reshape(-1).astype(np.int64)
            first = np.full(g.size, -1, np.int64)
            first[idx.astype(np.int64)[::-1]] = up[::-1]
            bad = np.flatnonzero(first[idx.astype(np.int64)] != up)
            if bad.size:
                i = int(idx[bad[0]])
                raise ModelError(f"plate '{g.name}' is nested in plate '{parent.name}', but its group {i} holds rows of "
                                 f"{parent.name} groups {first[i]} and {int(up[bad[0]])} ('{parent.index}'); each "
                                 f"group of a nested plate lies inside one group of its parent")
    return out


def size_plate(prog, data) -> None:
    """A plate declared without size (m.plate(name)) takes the rows of the data fit trains on:
    set at the first fit, and again when a later fit's data has other rows (never a size the
    model gave)."""
    plates = getattr(prog.model, "plates", None) or {}
    if not plates:
        return
    if getattr(prog.model, "groups", None) and isinstance(data, dict):   # the data set's rows per group
        prog.group_counts = count_groups(prog.model, data)
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
