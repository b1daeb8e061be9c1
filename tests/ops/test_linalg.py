"""matmul and friends through check_op, every combination of 1-D, 2-D and batched shapes."""
import numpy as np
import pytest
from op_helper import check_op, torch

import shendu as sd

rng = np.random.default_rng(0)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 5)),
                                   ((3, 4), (4,)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
                                   ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4,)),
                                   ((0, 4), (4, 2)), ((2, 3, 0), (0, 2))])
def test_matmul(sa, sb):
    check_op(lambda a, b: a @ b, [rng.standard_normal(sa), rng.standard_normal(sb)],
             np.matmul, lambda a, b: a @ b)


def test_mm_bmm_dot_outer():
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    check_op(sd.bmm, [a, b], np.matmul, torch and torch.bmm)
    check_op(sd.mm, [a[0], b[0]], np.matmul, torch and torch.mm)
    check_op(sd.dot, [a[0, 0], b[0, :, 0]], np.dot, torch and torch.dot)
    check_op(sd.outer, [a[0, 0], b[0, 0]], np.outer, torch and torch.outer)


def test_matmul_shape_error():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        sd.ones(2, 3) @ sd.ones(4, 5)
