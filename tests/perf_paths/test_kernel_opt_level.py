"""shendu's kernels compile at ``KERNEL_OPT_LEVEL`` without changing numba's setting for
anyone else (see ``shendu/backend/jit/elementwise.py``)."""
import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="the compiled kernels need numba")

from numba.core import codegen, config  # noqa: E402

from shendu.backend.jit import elementwise  # noqa: E402


def _spy_levels(monkeypatch):
    """The levels numba's setting gives its pass builders from now on (its explicit
    ``opt=0`` pre-inlining pass is not governed by the setting and is left out)."""
    seen = []
    original = codegen.CPUCodegen._pass_builder

    def spy(self, **kwargs):
        if "opt" not in kwargs:
            seen.append(int(config.OPT))
        return original(self, **kwargs)

    monkeypatch.setattr(codegen.CPUCodegen, "_pass_builder", spy)
    return seen


def _double(a, out):
    for i in range(a.size):
        out[i] = 2 * a[i]


def test_a_kernel_compiles_at_the_kernel_level_and_restores_numbas(monkeypatch):
    level_before = int(config.OPT)
    if level_before <= elementwise.KERNEL_OPT_LEVEL:
        pytest.skip(f"NUMBA_OPT={level_before} is already at or below the kernel level")
    seen = _spy_levels(monkeypatch)
    # cache off: a fresh compile every time this test runs
    k = elementwise.at_kernel_level(numba.njit(cache=False)(_double))
    a = np.arange(5.0)
    out = np.empty_like(a)
    k(a, out)
    np.testing.assert_array_equal(out, 2 * a)
    assert seen and set(seen) == {elementwise.KERNEL_OPT_LEVEL}
    assert int(config.OPT) == level_before


def test_other_numba_code_keeps_numbas_level(monkeypatch):
    seen = _spy_levels(monkeypatch)
    plain = numba.njit(cache=False)(_double)
    a = np.arange(3.0)
    out = np.empty_like(a)
    plain(a, out)
    assert seen and set(seen) == {int(config.OPT)}
