"""The activations as elementwise ops: sigmoid, tanh, relu, softplus, sqrt1p and exp, each declared
from its scalar function, first and second derivative (kernels/declare.unary: the forward kernel
out = f(x), the VJP gx += gout * f'(x), Price's second-order kernel, the op-table entry and the DSL
constructor ppl.<kind>). tanh's and exp's VJPs read the forward value (1 - y^2, y): no second
transcendental per element; relu's is a select, as in the field's autodiff systems: a cotangent
where x <= 0 is not multiplied by 0 (an infinite one would make a NaN of a term that is 0).

Every per-element formula is a function of kernels/math/scalar.py (its float32 polynomials
vectorise on the CPU: no libm call in the loops). relu's value and derivative are NaN at a NaN
input: a NaN input is carried to the gradient, never turned into 0.
"""
from numba import njit

from ..declare import unary
from ..math.scalar import (exp, like, relu, sigmoid, sigmoid_grad, softplus, sqrt1p, sqrt1p_grad, tanh,
                           tanh_grad_out)


@njit(cache=True, error_model="numpy")
def _sigmoid_grad2(x):
    """sigma''(x) = sigma'(x) (1 - 2 sigma(x))."""
    return sigmoid_grad(x) * (like(x, 1.0) - like(x, 2.0) * sigmoid(x))


@njit(cache=True, error_model="numpy")
def _tanh_grad(x):
    """tanh'(x) = 1 - tanh(x)^2."""
    return tanh_grad_out(tanh(x))


@njit(cache=True, error_model="numpy")
def _tanh_grad2(x):
    """tanh''(x) = -2 tanh(x) (1 - tanh(x)^2)."""
    t = tanh(x)
    return like(x, -2.0) * t * tanh_grad_out(t)


@njit(cache=True, error_model="numpy")
def _tanh_vjp(x, y, g):
    """g (1 - y^2) from the value y = tanh(x)."""
    return g * tanh_grad_out(y)


@njit(cache=True, error_model="numpy")
def _relu_grad(x):
    """1 above 0, 0 at or below 0, NaN at NaN (both comparisons are False there)."""
    zero = like(x, 0.0)
    return like(x, 1.0) if x > zero else (zero if x <= zero else x)


@njit(cache=True, error_model="numpy")
def _relu_grad2(x):
    """0, NaN at NaN."""
    zero = like(x, 0.0)
    return zero if x == x else x


@njit(cache=True, error_model="numpy")
def _relu_vjp(x, y, g):
    """g where x > 0, 0 at or below 0 (the value does not depend on x there, whatever g), NaN at NaN."""
    zero = like(x, 0.0)
    return g if x > zero else (zero if x <= zero else x)


@njit(cache=True, error_model="numpy")
def _exp_vjp(x, y, g):
    """g exp(x) = g y, from the value."""
    return g * y


@njit(cache=True, error_model="numpy")
def _sqrt1p_grad2(x):
    """d^2 sqrt(1 + x^2) / dx^2 = 1 / (1 + x^2)^(3/2)."""
    q = sqrt1p(x)
    return like(x, 1.0) / (q * q * q)


OP = (
    unary("sigmoid", sigmoid, sigmoid_grad, "Elementwise sigmoid.", d2f=_sigmoid_grad2),
    unary("tanh", tanh, _tanh_grad, "Elementwise tanh.", d2f=_tanh_grad2, vjp=_tanh_vjp),
    unary("relu", relu, _relu_grad, "Elementwise relu.", d2f=_relu_grad2, vjp=_relu_vjp),
    unary("softplus", softplus, sigmoid, "Elementwise softplus.", d2f=sigmoid_grad),
    unary("exp", exp, exp, "Elementwise exp.", d2f=exp, vjp=_exp_vjp),
    unary("sqrt1p", sqrt1p, sqrt1p_grad, "sqrt(1 + z^2): a smooth positive scale for Gaussian heads.",
          d2f=_sqrt1p_grad2),
)
