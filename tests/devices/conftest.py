"""``fake_cuda``: the CuPy stand-in (fakecupy.py) installed as device 'cuda' for one test."""
import fakecupy
import pytest


@pytest.fixture
def fake_cuda():
    with fakecupy.installed() as cp:
        for k in fakecupy.transfers:
            fakecupy.transfers[k] = 0
        yield cp
