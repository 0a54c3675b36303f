"""The graph's analysis: validation, downstream costs, gradient-free paths, plates."""
