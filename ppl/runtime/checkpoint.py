"""Checkpoint files (.npz) of a program's parameters and estimator state, shared by
`Program.save` / `load` and `fit`.

Writing goes to a temporary file in the same folder, is read back, then renamed over the old
file (`os.replace`), so a failure midway never loses the previous checkpoint. Reading checks
everything (a readable file, the format version, the parameter names and shapes, the state's
size, finite values) before anything is assigned, so a failed load leaves the program as it was.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError

FORMAT = 1   # the layout below; a checkpoint without the field predates it and has the same layout


def graph_digest(model) -> str:
    """The identity of a model's graph: every node's name, kind, width, inputs and group size, in
    order (not its constants' values, its name or its plate's size): two models that load each
    other's checkpoints have the same digest."""
    import hashlib
    parts = [(n.name, n.kind, n.width, tuple(i.name for i in n.inputs), n.attrs.get("K"), n.attrs.get("cost_name"))
             for n in model.order]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def _layout_fields(prog) -> dict:
    return {"format": np.array(FORMAT, np.int64), "model": np.array(prog.model.name),
            "graph": np.array(graph_digest(prog.model)),
            "names": np.array([p[0] for p in prog.layout.params]),
            "sizes": np.array([int(np.prod(p[2])) for p in prog.layout.params], np.int64),
            "estimators": np.array(estimators_of(prog)),
            "theta": prog.theta, "state": prog.state}


def estimators_of(prog) -> str:
    """The program's estimator per stochastic node, as a line "node=estimator,..." (a checkpoint's
    record: a measured choice that switched during training resumes with the estimators saved)."""
    return ",".join(f"{n.name}={ch.estimator}" for n, (ch, _) in prog.choices.items())


def saved_estimators(path) -> dict | None:
    """{node: estimator} a checkpoint was written with, or None (no such file or record)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            line = str(f["estimators"]) if "estimators" in f.files else None
    except Exception:
        return None
    return None if line is None else dict(kv.split("=", 1) for kv in line.split(",") if kv)


def write(path, prog, **extra) -> None:
    """Write prog's parameters and state (and `extra` arrays) to path, atomically."""
    path = Path(path)
    fields = {**_layout_fields(prog), **extra}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **fields)
        with np.load(tmp) as f:  # read it back before it replaces the last good checkpoint
            if not np.array_equal(f["theta"], prog.theta):
                raise OSError("the parameters did not read back intact")
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise ModelError(f"checkpoint {path}: writing failed ({type(e).__name__}: {e}); the previous "
                             f"file, if any, was kept") from e
        raise
    os.replace(tmp, path)


def read(path, prog, required=()) -> dict:
    """All arrays of the checkpoint at path, after checking it fits prog; raises ModelError naming
    the file and the problem otherwise. Assigns nothing."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("a single array, not an .npz archive")
            ck = {k: f[k] for k in f.files}
    except Exception as e:  # BadZipFile, EOFError, zlib errors, a pickled or foreign file ...
        raise ModelError(f"checkpoint {path} is not a readable ppl checkpoint (truncated, or not written by "
                         f"Program.save / fit: {type(e).__name__}: {e}); save it again") from None
    missing = [k for k in ("theta", "state", "names", *required) if k not in ck]
    if missing:
        raise ModelError(f"checkpoint {path} is not a ppl checkpoint: it lacks {', '.join(missing)}")
    fmt = int(ck["format"]) if "format" in ck and ck["format"].shape == () else FORMAT
    if fmt != FORMAT or ("format" in ck and ck["format"].shape != ()):
        raise ModelError(f"checkpoint {path} has format version {ck['format'].tolist()!r}; this ppl reads version {FORMAT}; "
                         f"save it again with this version")
    names = [str(n) for n in np.atleast_1d(ck["names"])] if ck["names"].size else []
    want = [p[0] for p in prog.layout.params]
    model = str(ck["model"]) if "model" in ck else "?"
    if names != want:
        diff = sorted(set(names) ^ set(want))[:4] or ["(same names, another order)"]
        raise ModelError(f"checkpoint {path} holds the parameters of a different program (model '{model}', "
                         f"{len(names)} parameters; they differ in {', '.join(diff)}); compile the same model and "
                         f"estimators to load it")
    sizes = [int(np.prod(p[2])) for p in prog.layout.params]
    if "sizes" in ck and [int(s) for s in np.atleast_1d(ck["sizes"])] != sizes:
        bad = [n for n, a, b in zip(want, np.atleast_1d(ck["sizes"]), sizes) if int(a) != b]
        raise ModelError(f"checkpoint {path}: parameter(s) {', '.join(bad[:4])} have other shapes than in this "
                         f"program, so it is a different program (model '{model}'); compile the same model with the same "
                         f"widths to load it")
    if "graph" in ck and str(ck["graph"]) != graph_digest(prog.model):   # a checkpoint of before: no digest
        raise ModelError(f"checkpoint {path} was written by another model's program (model '{model}'): the parameter "
                         f"names and shapes agree but the graph's nodes or their connections differ from model "
                         f"'{prog.model.name}'; load it into a program of the model that wrote it")
    for key, have in (("theta", prog.theta), ("state", prog.state)):
        a = ck[key]
        if a.ndim != 1 or a.shape != have.shape or a.dtype.kind != "f":
            raise ModelError(f"checkpoint {path}: '{key}' has shape {a.shape} ({a.dtype}), this program needs "
                             f"{have.shape} floats; compile the same model and estimators to load it")
        if not np.all(np.isfinite(a)):
            raise ModelError(f"checkpoint {path}: '{key}' has non-finite values (NaN or inf)")
    return ck


def assign(prog, ck) -> None:
    prog.theta[:] = ck["theta"]
    prog.state[:] = ck["state"]
