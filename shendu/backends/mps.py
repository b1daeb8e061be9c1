"""Apple's Metal GPUs (PyTorch's ``mps`` device): not a shendu backend."""


def is_available() -> bool:
    """False: shendu has no Metal backend (its devices are the CPU and CUDA via CuPy)."""
    return False


def is_built() -> bool:
    """False: shendu is not built with Metal support."""
    return False
