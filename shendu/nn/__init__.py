"""Neural-network building blocks: ``Module``, layers, losses, ``functional`` and ``init``."""
from .parameter import Parameter
