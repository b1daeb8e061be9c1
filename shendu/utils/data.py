"""``shendu.utils.data`` re-exports ``shendu.data`` so code written for PyTorch's
``torch.utils.data`` runs with one import changed."""
from ..data import *  # noqa: F401,F403
from ..data import __all__  # noqa: F401
