"""einsum (issue 10): forward against np.einsum, backward against finite differences and
forward mode, and against torch.einsum, over the forms PyTorch accepts."""
import numpy as np
import pytest
from op_helper import check_op, torch

import shendu as sd

rng = np.random.default_rng(13)
T = torch

CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),                 # implicit output
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 3)]),
    ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ii->i", [(3, 3)]),                         # diagonal
    ("ii", [(3, 3)]),                            # trace
    ("iji->j", [(3, 2, 3)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ijk->k", [(2, 3, 4)]),                     # letters only in one operand are summed
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 2)]),  # ellipsis with broadcasting
    ("b...,b...->b", [(2, 3, 4), (2, 3, 4)]),      # dims under '...' summed (NumPy refuses)
    ("...i,...i", [(2, 1, 4), (3, 4)]),          # size-1 dims broadcast
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),  # attention scores
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("i,ij,j", [(3,), (3, 4), (4,)]),
    ("Ab,bC->AC", [(2, 3), (3, 2)]),             # upper-case letters
    ("ij,kj->ik", [(0, 3), (2, 3)]),             # size 0
]


@pytest.mark.parametrize("eq,shapes", CASES, ids=[c[0] for c in CASES])
def test_einsum(eq, shapes):
    args = [rng.uniform(-1, 1, s) for s in shapes]
    np_eq = "bjk,bjk->b" if eq == "b...,b...->b" else eq
    check_op(lambda *xs: sd.einsum(eq, *xs), args, lambda *xs: np.einsum(np_eq, *xs),
             T and (lambda *xs: T.einsum(eq, *xs)))


def test_einsum_list_form_and_ints():
    a = sd.tensor([[1, 2], [3, 4]])
    assert sd.einsum("ij,jk->ik", [a, a]).tolist() == [[7, 10], [15, 22]]
    assert sd.einsum("i j , j k -> i k", a, a).tolist() == [[7, 10], [15, 22]]


@pytest.mark.parametrize("eq,shapes,match", [
    ("ij,jk->ik", [(2, 3), (4, 5)], "subscript 'j' has size 3 in one operand and 4"),
    ("ij->ik", [(2, 3)], r"output subscripts \['k'\] do not appear"),
    ("ij,jk", [(2, 3)], "has 2 operands but 1 tensors"),
    ("ijk", [(2, 3)], r"operand 0 has shape \(2, 3\)"),
    ("ij->ii", [(2, 2)], "output subscript repeated"),
    ("ii", [(2, 3)], "repeated in one operand with different sizes 2 and 3"),
    ("i1", [(2, 3)], "subscripts must be letters"),
])
def test_einsum_errors(eq, shapes, match):
    with pytest.raises(ValueError, match=match):
        sd.einsum(eq, *[sd.zeros(*s) for s in shapes])
