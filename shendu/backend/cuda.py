"""CuPy, imported only when a CUDA device is first asked for.

``ndarray_type`` stays ``None`` until then, so CPU-only code pays one ``is None`` check.
"""
from __future__ import annotations

cupy = None
ndarray_type = None
_import_error: Exception | None = None


def _try_import():
    global cupy, ndarray_type, _import_error
    if cupy is not None or _import_error is not None:
        return cupy
    try:
        import cupy as cp

        cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no cupy, no driver or no device
        _import_error = exc
        return None
    cupy, ndarray_type = cp, cp.ndarray
    return cupy


def is_available() -> bool:
    """True when CuPy imports and at least one CUDA device is visible."""
    return _try_import() is not None


def device_count() -> int:
    cp = _try_import()
    return 0 if cp is None else cp.cuda.runtime.getDeviceCount()


def require():
    cp = _try_import()
    if cp is None:
        raise RuntimeError(
            "device='cuda' needs CuPy and a CUDA GPU: install shendu[cuda] "
            f"(cupy-cuda13x) on a machine with an NVIDIA GPU ({_import_error!r})"
        )
    return cp


def synchronize() -> None:
    if cupy is not None:
        cupy.cuda.Device().synchronize()
