"""A CUDA device function that declares a shared array, or calls one that does, is inlined where
it is called (``@cuda.jit(device=True, inline="always")``).

numba-cuda defines a device function's shared array as a global of the function's own code; a
kernel that reaches that function through two device functions compiled apart (two row bodies of
one joined kernel, kernels/cuda/fused.py, each summing over a block's lanes) links that code twice
and NVVM refuses the duplicate definition (ERROR_INVALID_IR): the joined kernel then falls back to
one launch per member. Inlined, each caller defines a shared array of its own. Compiling the
joined kernels to PTX (benchmarks/experiments/ptx_check.py, with numba-cuda's NVVM) is the check
on a machine that has it; this test holds the rule everywhere, from the kernels' source."""
import ast
import pathlib

import ppl.kernels

KERNELS = pathlib.Path(ppl.kernels.__file__).resolve().parent


def _device_functions(tree):
    """{name: (its def, inlined)} of the module's @cuda.jit(device=True, ...) functions."""
    out = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for d in fn.decorator_list:
            if isinstance(d, ast.Call) and ast.unparse(d.func) == "cuda.jit" and any(
                    k.arg == "device" and ast.unparse(k.value) == "True" for k in d.keywords):
                inline = any(k.arg == "inline" and ast.unparse(k.value) in ("'always'", '"always"')
                             for k in d.keywords)
                out[fn.name] = (fn, inline)
    return out


def not_inlined(source: str) -> list:
    """The device functions of `source` that declare a shared array or call (in the module) one
    that does, and are not inlined."""
    funcs = _device_functions(ast.parse(source))
    shared = {n for n, (fn, _) in funcs.items() if "cuda.shared.array" in ast.unparse(fn)}
    grew = True
    while grew:
        grew = False
        for n, (fn, _) in funcs.items():
            calls = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
            if n not in shared and calls & shared:
                shared.add(n)
                grew = True
    return sorted(n for n in shared if not funcs[n][1])


def test_every_device_function_with_a_shared_array_is_inlined():
    bad, seen = {}, 0
    for path in KERNELS.rglob("*.py"):
        src = path.read_text()
        if "cuda.shared.array" not in src:
            continue
        seen += 1
        if not_inlined(src):
            bad[path.name] = not_inlined(src)
    assert seen >= 1 and not bad, bad


def test_of_the_test_a_helper_with_a_shared_array_and_its_caller_are_found():
    src = '''
@cuda.jit(device=True)
def total(v):
    buf = cuda.shared.array(32, float64)
    return buf[0]

@cuda.jit(device=True)
def summed(v, W):
    return total(v)

@cuda.jit(device=True, inline="always")
def fine(v):
    buf = cuda.shared.array(32, float64)
    return buf[0]

@cuda.jit(device=True)
def plain(v):
    return v + 1
'''
    assert not_inlined(src) == ["summed", "total"]
