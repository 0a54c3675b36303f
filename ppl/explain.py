"""What a Program says about itself: the estimator table with its reasons (explain) and the
autotune policy's measurements (autotune_report)."""
from __future__ import annotations

from . import declare


class Explained:
    """Program's reports (a mixin of ppl.program.Program)."""

    def autotune_report(self) -> str:
        """The autotune table (policy "autotune"): node | estimator | gradient variance +- its
        standard error | rows per data row | score = variance x rows | us per step (fastest of interleaved blocks) | verdict."""
        from . import autotune as A
        head = ("node", "estimator", "variance", "+- SE", "rows", "score", "us/step", "why")
        rows = [head]
        for r in self.autotune_table:
            if r["rows"]:
                rows.append((r["node"], r["estimator"] + (" *" if r["chosen"] else ""), f"{r['variance']:.4g}",
                             f"{r['se']:.2g}", str(r["rows"]), f"{r['score']:.4g}", f"{r['us_per_step']:.1f}",
                             r["why"]))
            else:
                rows.append((r["node"], r["estimator"], "-", "-", "-", "-", "-", r["why"]))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join([f"autotune (* chosen): variance = trace of the model-parameter gradient's covariance over "
                          f"{A.DRAWS} fixed draws at the initial parameters; score = variance x rows per data row; "
                          f"scores within {A.TIE_MARGIN:.0%} (or 2 SE) of the least are tied; among the tied the "
                          f"fewest rows win, then (same rows) any > {1 + A.TIME_MARGIN:g}x the fastest time drops "
                          f"out, then the rule table's choice; us/step: the fastest of {A.ROUNDS} interleaved rounds"]
                         + lines)

    def explain(self) -> str:
        """A table: node | distribution | estimator | unbiased | why; then, per node whose estimator is
        biased, where its bias comes from; under policy "autotune" the measurements behind each
        choice (`autotune_report`)."""
        from .estimators import REGISTRY
        rows = [("node", "distribution", "estimator", "unbiased", "why")]
        for node, (ch, info) in self.choices.items():
            est = REGISTRY[ch.estimator]
            opts = {k: v for k, v in ch.options.items() if k in ("baseline", "temperature")}
            name = ch.estimator + (f" ({', '.join(f'{k}={v}' for k, v in opts.items())})" if opts else "")
            rows.append((node.name, info.dist.name, name, "yes" if est.unbiased else "no", ch.reason))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        for node, (ch, _) in self.choices.items():
            if REGISTRY[ch.estimator].bias:
                lines.append(f"'{node.name}' ({ch.estimator}) is biased: {REGISTRY[ch.estimator].bias}")
        if self.autotune_table:
            lines += ["", self.autotune_report(), ""]
        if declare.is_declared(self.model):
            terms = [("cost", "sign", "term")] + declare.terms(self.model)
            w = [max(len(r[i]) for r in terms) for i in range(3)]
            lines.append("costs derived from m.latent / m.observe (their sum is -ELBO: -log p(x, h) + log q(h | x)):")
            lines += ["  " + " | ".join(c.ljust(k) for c, k in zip(r, w)).rstrip() for r in terms]
        extra = f"step: {self.layout.lowering}; samples per data row: {self.samples}"
        if self.objective == "iwae":
            extra = (f"objective: iwae, -log (1/K sum_k exp(-C_k)) over the K = {self.samples} draws of each data "
                     f"row (C_k: the sum of draw k's costs)\n") + extra
        if self.layout.S > 1:
            extra += f"; rows per draw (enumeration / antithetic / REBAR configurations): {self.layout.S}"
        return "\n".join(lines + [extra])
