"""Shared test setup: make ``tests/`` importable (for ``op_helper``) and seed every test."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _seed():
    import shendu as sd

    sd.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    # Test-sized matrix products gain nothing from a second BLAS thread, and on shared
    # cores OpenBLAS threads stall waiting for each other (see shendu/_threads.py).
    from shendu._threads import blas_threads

    with blas_threads(1):
        yield
