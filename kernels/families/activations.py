"""The activations' elementwise kernels: sigmoid, tanh, relu, softplus, sqrt1p and exp, each a
forward kernel (out = f(z)) and its VJP (gz += gout * f'(z), tanh's and exp's from the value out).

Declared once (kernels/declare.py): each kernel is a per-cell body over z's cells, a CUDA thread
per cell. Every per-element formula is a function of kernels/math/scalar.py (its float32
polynomials vectorise on the CPU: no libm call in the loops). Conventions are cpu/core.py's.
"""
from ..declare import cells
from ..math.scalar import exp, relu, sigmoid, sigmoid_grad, softplus, sqrt1p, sqrt1p_grad, tanh, tanh_grad_out


@cells("z")
def sigmoid_fwd(r, j, z, out):
    """out = sigma(z) = 1 / (1 + exp(-z))."""
    out[r, j] = sigmoid(z[r, j])


@cells("z")
def sigmoid_bwd(r, j, z, out, gout, gz):
    """gz += gout * sigma'(z), with sigma'(z) = sigma(z) sigma(-z) computed from z."""
    gz[r, j] += gout[r, j] * sigmoid_grad(z[r, j])


@cells("z")
def tanh_fwd(r, j, z, out):
    """out = tanh(z)."""
    out[r, j] = tanh(z[r, j])


@cells("z")
def tanh_bwd(r, j, z, out, gout, gz):
    """gz += gout * (1 - tanh(z)^2), from out = tanh(z)."""
    gz[r, j] += gout[r, j] * tanh_grad_out(out[r, j])


@cells("z")
def relu_fwd(r, j, z, out):
    """out = max(z, 0)."""
    out[r, j] = relu(z[r, j])


@cells("z")
def relu_bwd(r, j, z, out, gout, gz):
    """gz += gout * [z > 0]."""
    if z[r, j] > 0:
        gz[r, j] += gout[r, j]


@cells("z")
def softplus_fwd(r, j, z, out):
    """out = log(1 + exp(z)), stable for any z."""
    out[r, j] = softplus(z[r, j])


@cells("z")
def softplus_bwd(r, j, z, out, gout, gz):
    """gz += gout * sigma(z)."""
    gz[r, j] += gout[r, j] * sigmoid(z[r, j])


@cells("z")
def sqrt1p_fwd(r, j, z, out):
    """out = sqrt(1 + z^2), the scale activation of heteroscedastic regression (sigma >= 1)."""
    out[r, j] = sqrt1p(z[r, j])


@cells("z")
def sqrt1p_bwd(r, j, z, out, gout, gz):
    """gz += gout * z / sqrt(1 + z^2)."""
    gz[r, j] += gout[r, j] * sqrt1p_grad(z[r, j])


@cells("z")
def exp_fwd(r, j, z, out):
    """out = exp(z)."""
    out[r, j] = exp(z[r, j])


@cells("z")
def exp_bwd(r, j, z, out, gout, gz):
    """gz += gout * exp(z) (= gout * out)."""
    gz[r, j] += gout[r, j] * out[r, j]


R, D = 4, 6


def _bwd_case(fwd):
    """A VJP's arguments: z, its forward value (tanh's and exp's VJPs read it), gout, gz."""
    def case(g):
        z, out = g.x(R, D), g.out(R, D)
        fwd(z, out)
        return (z, out, g.x(R, D), g.x(R, D))
    return case


PARITY = {}
for _kind, _fwd in [("sigmoid", sigmoid_fwd), ("tanh", tanh_fwd), ("relu", relu_fwd), ("softplus", softplus_fwd),
                    ("sqrt1p", sqrt1p_fwd), ("exp", exp_fwd)]:
    PARITY[f"{_kind}_fwd"] = lambda g: (g.x(R, D), g.out(R, D))
    PARITY[f"{_kind}_bwd"] = _bwd_case(_fwd)
