"""Shared by the fast-path tests."""
import pytest


@pytest.fixture
def kernel_spy(monkeypatch):
    """``kernel_spy(*names)`` wraps those kernels of ``shendu.backend.jit`` and returns the
    list of the names called, so a test can tell that the compiled path really ran."""
    from shendu.backend import jit

    calls = []

    def watch(*names):
        for name in names:
            kernel = getattr(jit, name)

            def wrapper(*args, _kernel=kernel, _name=name):
                calls.append(_name)
                return _kernel(*args)
            monkeypatch.setattr(jit, name, wrapper)
        return calls
    return watch
