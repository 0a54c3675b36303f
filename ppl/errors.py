"""The one exception ppl raises for bad models, nodes and arguments (re-exported as ppl.ModelError)."""


class ModelError(ValueError):
    """A model, node or argument is not valid; the message names it and says how to fix it."""
