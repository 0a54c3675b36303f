"""Call templates as records (ppl/calls.py `KernelRef.on`): the op table's, the laws' and the
estimators' per-law kernels are declared as records, and each prints as the call its text form
would be read as (the parser a user's estimator's text templates still go through)."""
from __future__ import annotations

import pytest

from ppl.calls import KERNELS, Template, flat, lit, template
from ppl.distributions import DISTRIBUTIONS
from ppl.estimators import REGISTRY
from ppl.ops import OPS


def _templates():
    for op in OPS.values():
        rules = op.price.values() if isinstance(op.price, dict) else [op.price]
        yield from (t for t in (op.fwd, op.bwd, op.fwd_each, op.bwd_each, *rules) if t)
    for law in DISTRIBUTIONS.values():
        yield from (k for k in law.kernels.values() if isinstance(k, Template))
    for est in REGISTRY.values():
        for table in (getattr(est, "kernels", None) or {}).values():
            yield from (k for k in table.values() if isinstance(k, Template))


def test_every_builtin_template_is_a_record_its_text_reads_back_as():
    seen = list(_templates())
    assert len(seen) > 60
    for t in seen:
        again = template(str(t))
        assert again is not t and (again.kernel, again._parts, again.fields) == (t.kernel, t._parts, t.fields), str(t)


def test_fields_literals_and_flat_buffers_render_as_the_lowering_needs():
    t = KERNELS.rows.scale_shift_fwd.on("x0", lit("scale"), lit("shift"), "out")
    assert t.fields == {"x0", "scale", "shift", "out"}
    c = t(x0="v_a", scale=0.5, shift=-1.0, out="v_b")
    assert str(c) == "rows.scale_shift_fwd(v_a, 0.5, -1.0, v_b)" and c.kernel == KERNELS.rows.scale_shift_fwd
    r = KERNELS.core.row_sum_fwd.on("x0", flat("out"))(x0="v_a", out="c_h")
    assert str(r) == "core.row_sum_fwd(v_a, c_h.reshape(c_h.shape[0]))" and r.args[1].buffer == "c_h"
    assert str(KERNELS.relax.relax_bwd.on("a", True)(a="x")) == "relax.relax_bwd(x, True)"
    with pytest.raises(ValueError, match="a field name, lit\\(name\\), flat\\(name\\) or a constant"):
        KERNELS.core.add_fwd.on("x0 + 1", "out")
