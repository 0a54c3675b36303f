"""Every law, one module each: the laws are found here (not listed), each module's `LAWS` a
tuple of `law.Distribution` entries; `DISTRIBUTIONS` maps a node's kind to its entry; what a
law's constructor takes (`alternatives`, `parameter_names`)."""
import importlib
import pkgutil

from .law import Distribution

_NOT_LAWS = {"law"}
LAW_MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_LAWS))


def _collect() -> dict:
    out = {}
    for name in LAW_MODULES:
        for entry in importlib.import_module(f"{__name__}.{name}").LAWS:
            if not isinstance(entry, Distribution) or not entry.kind:
                raise TypeError(f"ppl.laws.{name}: LAWS holds Distribution entries with a kind, got {entry!r}")
            if entry.kind in out:
                raise TypeError(f"ppl.laws.{name}: the kind {entry.kind!r} is declared twice")
            out[entry.kind] = entry
    return out


DISTRIBUTIONS = _collect()


def alternatives(law: Distribution) -> set:
    """The parameters of which a law's constructor takes exactly one: those its entry and its
    by_param variants differ in ({"logits", "probs"}); empty without by_param variants."""
    out = set()
    for kind in law.by_param.values():
        out |= set(law.params) ^ set(DISTRIBUTIONS[kind].params)
    return out


def parameter_names(law: Distribution) -> list:
    """Every parameter name a law's constructor takes, in order (its by_param variants' after its own)."""
    return list(dict.fromkeys([*law.params, *(p for k in law.by_param.values() for p in DISTRIBUTIONS[k].params)]))
