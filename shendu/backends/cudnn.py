"""PyTorch's cuDNN switches. shendu does not call cuDNN (CuPy picks its own algorithms),
so these are flags that portable code may set and read; they change nothing."""

benchmark = False  # PyTorch: autotune convolution algorithms per input shape
deterministic = False  # PyTorch: only deterministic cuDNN algorithms
enabled = True


def is_available() -> bool:
    """False: shendu's CUDA path does not use cuDNN."""
    return False


def version():
    """None: no cuDNN library is loaded."""
    return None
