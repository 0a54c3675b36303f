"""The compiler: the named passes from a model to a compiled program."""
