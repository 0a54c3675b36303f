"""A compiled program: its parameters, derived programs, reports, checkpoints, the CUDA program, diagnostics."""
