"""Per-platform primitives below the kernel families: the CPU's BLAS products (blas.py), ppl's
own count of parts (parts.py) and AVX-512 lanes (simd.py). Families and targets import them;
they import only kernels/math."""
