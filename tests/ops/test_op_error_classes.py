"""The issue-10 ops raise errors that ``except RuntimeError`` catches, as PyTorch's do.

Each case runs the same bad call under shendu and (when installed) PyTorch: both must raise
a ``RuntimeError``; shendu's is also the ``ValueError``/``TypeError`` it raised before
(``ShapeError``, ``DTypeError``, ``ArgumentError``) and names the op.
"""
import pytest
from op_helper import has_oracle, torch

import shendu as sd
from shendu.errors import ArgumentError, DTypeError, ShapeError


def _cases(m):
    """(name, expected shendu class, the bad call) for library ``m`` (shendu or torch)."""
    long = m.int64
    return [
        ("einsum", ShapeError, lambda: m.einsum("ij,jk", m.ones(2, 2), m.ones(3, 2))),
        ("einsum", ArgumentError, lambda: m.einsum("ij->k", m.ones(2, 2))),
        ("einsum", ShapeError, lambda: m.einsum("ijk", m.ones(2, 2))),
        ("quantile", ArgumentError, lambda: m.quantile(m.ones(3), 2.0)),
        ("quantile", DTypeError, lambda: m.quantile(m.arange(3), 0.5)),
        ("nanmean", DTypeError, lambda: m.nanmean(m.arange(3))),
        ("bincount", ArgumentError, lambda: m.bincount(m.tensor([-1, 2]))),
        ("bincount", ShapeError, lambda: m.bincount(m.ones(2, 2, dtype=long))),
        ("diag", ShapeError, lambda: m.diag(m.ones(2, 2, 2))),
        ("meshgrid", ShapeError, lambda: m.meshgrid(m.ones(2, 2), indexing="ij")),
        ("block_diag", ShapeError, lambda: m.block_diag(m.ones(2, 2, 2))),
        ("rot90", ArgumentError, lambda: m.rot90(m.ones(2, 2), 1, [0, 0])),
        ("index_add", ShapeError,
         lambda: m.zeros(3, 2).index_add_(0, m.zeros(2, dtype=long), m.ones(3))),
        ("trace", ShapeError, lambda: m.trace(m.ones(2))),
        ("inner", ShapeError, lambda: m.inner(m.ones(2), m.ones(3))),
        ("tensordot", ShapeError,
         lambda: m.tensordot(m.ones(2), m.ones(3), dims=([0], [0]))),
        ("cdist", ShapeError, lambda: m.cdist(m.ones(2, 3), m.ones(2, 4))),
        ("searchsorted", ArgumentError,
         lambda: m.searchsorted(m.ones(3), m.ones(2), side="middle")),
        ("bucketize", ShapeError, lambda: m.bucketize(m.ones(2), m.ones(2, 2))),
        ("histc", ArgumentError, lambda: m.histc(m.ones(3), 10, 2, 1)),
        ("scatter_reduce", ArgumentError,
         lambda: m.zeros(3).scatter_reduce(0, m.zeros(2, dtype=long), m.ones(2), "median")),
        ("random_", ArgumentError, lambda: m.zeros(3).random_(5, 2)),
    ]


CASES = _cases(sd)


@pytest.mark.parametrize("k", range(len(CASES)), ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_caught_by_except_runtime_error(k):
    name, cls, call = CASES[k]
    with pytest.raises(RuntimeError, match=name) as info:
        call()
    assert type(info.value) is cls
    base = TypeError if cls is DTypeError else ValueError  # what shendu raised before
    assert isinstance(info.value, base)
    if has_oracle(torch):
        with pytest.raises(RuntimeError):
            _cases(torch)[k][2]()


def test_pytorch_compatible_classes_keep_their_python_type():
    # PyTorch raises TypeError for a missing dim and ValueError for an operand-less einsum
    with pytest.raises(TypeError, match="cumprod"):
        sd.cumprod(sd.ones(2))
    with pytest.raises(ValueError, match="einsum"):
        sd.einsum("i")
    with pytest.raises(IndexError, match="index_fill"):  # out of range: IndexError as PyTorch
        sd.zeros(3).index_fill_(0, sd.tensor([5]), 1.0)
