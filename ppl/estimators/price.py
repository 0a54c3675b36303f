"""Price's theorem for Normal nodes (Bonnet 1964, Price 1958; Rezende et al. 2014):
the mean receives E[df/dz] (Bonnet, as the pathwise estimator) and the scale receives
sigma * E[d^2 f / dz^2] (Price), which has lower variance than the pathwise dz/dsigma = eps
when f is close to quadratic. The Hessian diagonal comes from a second-order forward pass
over the node's downstream graph (ppl.kernels.families.price); it is exact, so the estimator
applies when every path from the node to its costs is elementwise (activations, sums,
products, constant affine maps) into a separable cost head."""
from ppl.errors import ModelError
from ppl.calls import KERNELS, render
from ppl.ops import OPS

from .protocol import NO_GRAD, Estimator, register


@register
class Price(Estimator):
    name = "price"
    about = "Bonnet's / Price's theorems: E[df/dz] for the mean, sigma E[d2f/dz2] for the scale"
    cite = 'Price 1958, IRE Trans. Inf. Theory; Bonnet 1964; Rezende, Mohamed & Wierstra 2014, ICML (Gaussian gradient identities)'
    passes_value_grad = True
    hard_forward = False

    def check(self, info):
        if not info.dist.gaussian:
            return f"{info.dist.name} is not a Normal node"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def draw(self, ctx):
        ctx.sample()

    def estimate(self, ctx):
        gloc, gscale = ctx.param_grads()
        if gloc is NO_GRAD and gscale is NO_GRAD:
            return
        H, zero = hessian_below(ctx)
        if zero is not None:
            ctx.call(KERNELS.price.zero_d, zero, zero, at_start=True)
        gz = ctx.cotangent()
        if gloc is not NO_GRAD and gz is not NO_GRAD:  # Bonnet: the mean gets E[df/dz]
            ctx.law_call("sample_bwd", [ctx.drawn_noise(), gz], [gloc, NO_GRAD])   # a Normal's
        if gscale is not NO_GRAD:                      # Price: the scale gets sigma E[d^2 f / dz^2]
            ctx.call(KERNELS.price.price_scale_grad, ctx.params()[1], H, gscale)


def hessian_below(ctx):
    """Emit the second-order forward pass over the node's downstream graph, each cost adding its
    Hessian diagonal in the node's value into H: returns (H, the zero seed buffer it used or None).
    It walks the graph below the node (ctx.below()), reading its values and cost seeds."""
    node = ctx.node
    w = node.width
    d1z, d2z = ctx.buffer("pd1", w), ctx.buffer("pd2", w)
    ctx.call(KERNELS.price.seed_d, d1z, d2z)
    D = {node: (d1z, d2z)}
    zero = None
    H = ctx.buffer("ph", w)
    ctx.call(KERNELS.rows.zero2, H)

    def why(n, what):
        return ModelError(f"Normal '{node.name}': estimator 'price' needs an exact Hessian diagonal, but {what} "
                          f"('{n.name}', {n.kind}) mixes or hides its columns; use 'pathwise'")

    for n in ctx.below():
        deps = [x for x in n.inputs if x in D]
        if n.attrs.get("is_head"):
            if len(deps) != 1:
                raise why(n, "a cost reads it through several inputs")
            (x,) = deps
            d1, d2 = D[x]
            v = {f"x{j}": ctx.value(i) for j, i in enumerate(n.inputs)}
            # the head's Hessian-diagonal rule for the input that depends on the node (ops.OPS)
            rule = (OPS[n.kind].price or {}).get(next(j for j, i in enumerate(n.inputs) if i is x))
            if rule is None:
                raise why(n, "the cost")
            ctx.call(render(rule, cw=ctx.cost_seeds(n), d1=d1, d2=d2, H=H, **v))
            continue
        op = OPS.get(n.kind)
        if op is None or op.head or op.price is None:   # the op's second-order rule (ops.OPS)
            raise why(n, "a node below it")
        if zero is None:
            zero = ctx.buffer("pz", w)
        d1, d2 = ctx.buffer(f"pd1_{n.name}", w), ctx.buffer(f"pd2_{n.name}", w)
        D[n] = (d1, d2)
        ins = [D.get(i, (zero, zero)) for i in n.inputs]
        vals = {f"x{j}": (lambda i=i: ctx.value(i)) for j, i in enumerate(n.inputs)}
        for j, (a1, a2) in enumerate(ins):
            vals[f"d1_{j}"], vals[f"d2_{j}"] = a1, a2
        ctx.call(render(op.price, d1=d1, d2=d2, **vals, **n.attrs))
    return H, zero
