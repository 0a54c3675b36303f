"""Scalar math written once for both targets: formulas, special functions, the RNG."""
