"""Shape, indexing and movement ops through check_op."""
import numpy as np
import pytest
from op_helper import check_op, on, torch

import shendu as sd
import shendu.nn.functional as F

rng = np.random.default_rng(0)
T = torch


def r(*shape):
    return rng.standard_normal(shape)


CASES = [
    ("reshape", lambda x: x.reshape(4, 3), lambda x: x.reshape(4, 3), lambda x: x.reshape(4, 3),
     (3, 4)),
    ("reshape_infer", lambda x: x.reshape(-1), lambda x: x.reshape(-1),
     lambda x: x.reshape(-1), (3, 4)),
    ("view", lambda x: x.view(2, 6), lambda x: x.reshape(2, 6), lambda x: x.reshape(2, 6),
     (3, 4)),
    ("flatten", lambda x: x.flatten(1), lambda x: x.reshape(2, -1), lambda x: x.flatten(1),
     (2, 3, 4)),
    ("squeeze", lambda x: x.squeeze(), lambda x: x.squeeze(), lambda x: x.squeeze(), (1, 3, 1)),
    ("squeeze_dim", lambda x: x.squeeze(0), lambda x: x.squeeze(0), lambda x: x.squeeze(0),
     (1, 3, 1)),
    ("unsqueeze", lambda x: x.unsqueeze(1), lambda x: x[:, None], lambda x: x.unsqueeze(1),
     (3, 4)),
    ("unsqueeze_neg", lambda x: x.unsqueeze(-1), lambda x: x[..., None],
     lambda x: x.unsqueeze(-1), (3, 4)),
    ("transpose", lambda x: x.transpose(0, 2), lambda x: x.swapaxes(0, 2),
     lambda x: x.transpose(0, 2), (2, 3, 4)),
    ("permute", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1),
     lambda x: x.permute(2, 0, 1), (2, 3, 4)),
    ("T", lambda x: x.T, lambda x: x.T, lambda x: x.T, (3, 4)),
    ("mT", lambda x: x.mT, lambda x: x.swapaxes(-1, -2), lambda x: x.mT, (2, 3, 4)),
    ("expand", lambda x: x.expand(2, 3, 4), lambda x: np.broadcast_to(x, (2, 3, 4)),
     lambda x: x.expand(2, 3, 4), (3, 1)),
    ("expand_keep", lambda x: x.expand(-1, 4), lambda x: np.broadcast_to(x, (3, 4)),
     lambda x: x.expand(-1, 4), (3, 1)),
    ("broadcast_to", lambda x: sd.broadcast_to(x, (2, 3)), lambda x: np.broadcast_to(x, (2, 3)),
     T and (lambda x: T.broadcast_to(x, (2, 3))), (3,)),
    ("repeat", lambda x: x.repeat(2, 1, 3), lambda x: np.tile(x, (2, 1, 3)),
     lambda x: x.repeat(2, 1, 3), (2, 3)),
    ("flip", lambda x: x.flip(1), lambda x: np.flip(x, 1), lambda x: x.flip(1), (3, 4)),
    ("flip2", lambda x: sd.flip(x, (0, 1)), lambda x: np.flip(x, (0, 1)),
     T and (lambda x: T.flip(x, (0, 1))), (3, 4)),
    ("roll", lambda x: sd.roll(x, 2, 1), lambda x: np.roll(x, 2, 1),
     T and (lambda x: T.roll(x, 2, 1)), (3, 4)),
    ("tril", lambda x: sd.tril(x, -1), lambda x: np.tril(x, -1), T and (lambda x: T.tril(x, -1)),
     (4, 4)),
    ("triu", lambda x: x.triu(1), lambda x: np.triu(x, 1), lambda x: x.triu(1), (3, 4)),
    ("getitem_int", lambda x: x[1], lambda x: x[1], lambda x: x[1], (3, 4)),
    ("getitem_slice", lambda x: x[1:, ::2], lambda x: x[1:, ::2], lambda x: x[1:, ::2], (3, 4)),
    ("getitem_neg_step_none", lambda x: x[None, ..., -1], lambda x: x[None, ..., -1],
     lambda x: x[None, ..., -1], (3, 4)),
    ("getitem_repeated_ints", lambda x: x[[0, 2, 0, 0]], lambda x: x[[0, 2, 0, 0]],
     lambda x: x[[0, 2, 0, 0]], (3, 4)),
    ("getitem_2d_index", lambda x: x[[0, 1, 1], [3, 0, 3]], lambda x: x[[0, 1, 1], [3, 0, 3]],
     lambda x: x[[0, 1, 1], [3, 0, 3]], (3, 4)),
    ("getitem_mixed", lambda x: x[:, [1, 1, 2]], lambda x: x[:, [1, 1, 2]],
     lambda x: x[:, [1, 1, 2]], (3, 4)),
    ("pad_constant", lambda x: F.pad(x, (1, 2, 0, 1), value=0.5),
     lambda x: np.pad(x, ((0, 1), (1, 2)), constant_values=0.5),
     T and (lambda x: T.nn.functional.pad(x, (1, 2, 0, 1), value=0.5)), (3, 4)),
    ("pad_reflect", lambda x: F.pad(x, (2, 1), mode="reflect"),
     lambda x: np.pad(x, ((0, 0), (0, 0), (2, 1)), mode="reflect"),
     T and (lambda x: T.nn.functional.pad(x, (2, 1), mode="reflect")), (1, 2, 4)),
    ("pad_replicate", lambda x: F.pad(x, (1, 2, 2, 0), mode="replicate"),
     lambda x: np.pad(x, ((0, 0), (0, 0), (2, 0), (1, 2)), mode="edge"),
     T and (lambda x: T.nn.functional.pad(x, (1, 2, 2, 0), mode="replicate")), (1, 1, 3, 3)),
    ("pad_circular", lambda x: F.pad(x, (1, 1), mode="circular"),
     lambda x: np.pad(x, ((0, 0), (0, 0), (1, 1)), mode="wrap"),
     T and (lambda x: T.nn.functional.pad(x, (1, 1), mode="circular")), (1, 2, 4)),
    ("pad_negative_crops", lambda x: F.pad(x, (-1, 1)),
     lambda x: np.pad(x[:, 1:], ((0, 0), (0, 1))),
     T and (lambda x: T.nn.functional.pad(x, (-1, 1))), (3, 4)),
    ("clone", lambda x: x.clone(), lambda x: x.copy(), lambda x: x.clone(), (3, 4)),
    ("contiguous_T", lambda x: x.T.contiguous(), lambda x: x.T.copy(),
     lambda x: x.T.contiguous(), (3, 4)),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn,shape", CASES, ids=[c[0] for c in CASES])
def test_movement(name, fn, np_fn, t_fn, shape):
    check_op(fn, [r(*shape)], np_fn, t_fn)


def test_bool_mask_indexing():
    x = r(3, 4)
    mask = x > 0
    check_op(lambda a: a[on(a, mask)], [x], lambda a: a[mask],
             T and (lambda a: a[T.from_numpy(mask)]))


def test_tensor_index():
    idx = np.array([2, 0, 2])
    check_op(lambda a: a[on(a, idx)], [r(3, 4)], lambda a: a[idx],
             T and (lambda a: a[T.from_numpy(idx)]))


def test_cat_stack():
    a, b, c = r(2, 3), r(4, 3), r(1, 3)
    check_op(lambda *xs: sd.cat(xs), [a, b, c], lambda *xs: np.concatenate(xs),
             T and (lambda *xs: T.cat(xs)))
    check_op(lambda *xs: sd.cat(xs, dim=1), [r(2, 1), r(2, 3)],
             lambda *xs: np.concatenate(xs, 1), T and (lambda *xs: T.cat(xs, 1)))
    check_op(lambda *xs: sd.stack(xs, 1), [r(2, 3), r(2, 3)], lambda *xs: np.stack(xs, 1),
             T and (lambda *xs: T.stack(xs, 1)))
    check_op(lambda *xs: sd.stack(xs, -1), [r(2, 3), r(2, 3)], lambda *xs: np.stack(xs, -1),
             T and (lambda *xs: T.stack(xs, -1)))


def test_split_chunk_unbind():
    check_op(lambda x: x.split(2, 1), [r(3, 5)], lambda x: np.split(x, [2, 4], 1),
             lambda x: x.split(2, 1))
    check_op(lambda x: sd.split(x, [1, 3], 0), [r(4, 2)], lambda x: np.split(x, [1], 0),
             T and (lambda x: T.split(x, [1, 3], 0)))
    check_op(lambda x: x.chunk(3, 1), [r(2, 7)], lambda x: np.split(x, [3, 6], 1),
             lambda x: x.chunk(3, 1))
    check_op(lambda x: x.unbind(1), [r(2, 3)], lambda x: [x[:, i] for i in range(3)],
             lambda x: x.unbind(1))


def test_gather_scatter_index_select():
    idx = np.array([[0, 2, 2], [1, 1, 0]])
    check_op(lambda x: x.gather(1, on(x, idx)), [r(2, 4)],
             lambda x: np.take_along_axis(x, idx, 1),
             T and (lambda x: x.gather(1, T.from_numpy(idx))))
    small = np.array([[1], [0]])
    check_op(lambda x: sd.gather(x, 0, on(x, small)), [r(3, 2)],
             lambda x: np.array([[x[1, 0]], [x[0, 0]]]),
             T and (lambda x: T.gather(x, 0, T.from_numpy(small))))
    uniq = np.array([[2, 0], [1, 3]])
    def scatter_loop(x, s, index, add):
        out = x.copy()
        for i, j in np.ndindex(index.shape):  # out[i][index[i][j]] (+)= s[i][j]
            out[i, index[i, j]] = out[i, index[i, j]] + s[i, j] if add else s[i, j]
        return out
    check_op(lambda x, s: x.scatter(1, on(x, uniq), s), [r(2, 4), r(2, 2)],
             lambda x, s: scatter_loop(x, s, uniq, False),
             T and (lambda x, s: x.scatter(1, T.from_numpy(uniq), s)))
    check_op(lambda x, s: x.scatter_add(1, on(x, idx), s), [r(2, 4), r(2, 3)],
             lambda x, s: scatter_loop(x, s, idx, True),
             T and (lambda x, s: x.scatter_add(1, T.from_numpy(idx), s)))
    sel = np.array([2, 0, 2])
    check_op(lambda x: x.index_select(1, on(x, sel)), [r(2, 4)],
             lambda x: x[:, sel], T and (lambda x: x.index_select(1, T.from_numpy(sel))))


def test_masked_fill():
    mask = np.array([[True, False, False, True]])
    check_op(lambda x: x.masked_fill(on(x, mask), -1.0), [r(3, 4)],
             lambda x: np.where(mask, -1.0, x),
             T and (lambda x: x.masked_fill(T.from_numpy(mask), -1.0)))


def test_sort_topk():
    x = rng.permutation(12).reshape(3, 4).astype(float)
    check_op(lambda a: a.sort(1, descending=True).values, [x], lambda a: -np.sort(-a, 1),
             lambda a: a.sort(1, descending=True).values)
    check_op(lambda a: a.topk(2, dim=1).values, [x], lambda a: -np.sort(-a, 1)[:, :2],
             lambda a: a.topk(2, dim=1).values)
    assert sd.tensor(x).argsort(1).tolist() == np.argsort(x, 1).tolist()


def test_one_hot():
    out = F.one_hot(sd.tensor([0, 2, 1]), 4)
    assert out.dtype == sd.int64 and out.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]
    with pytest.raises(ValueError, match="one_hot"):
        F.one_hot(sd.tensor([5]), 3)


def test_views_share_the_version_counter():
    x = sd.zeros(4)
    v = x[1:3]
    v += 1
    assert x.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert x._version is v._version


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
        sd.ones(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match="expand"):
        sd.ones(2, 3).expand(4, 3)
    with pytest.raises(ValueError, match="cat: tensor 1 has shape"):
        sd.cat([sd.ones(2, 3), sd.ones(2, 4)])
    with pytest.raises(ValueError, match="permute"):
        sd.ones(2, 3).permute(0, 0)


def test_setitem_records_gradient():
    w = sd.tensor(r(4), requires_grad=True)
    y = w * 1.0
    y[1:3] = sd.tensor([5.0, 6.0], dtype=sd.float64)
    y.sum().backward()
    assert w.grad.tolist() == [1.0, 0.0, 0.0, 1.0]


def test_gradient_flows_through_dtype_casts():
    x = sd.tensor([1.0, 2.0], dtype=sd.float64, requires_grad=True)
    y = x.float() * 3
    assert y.dtype == sd.float32
    y.sum().backward()
    assert x.grad.dtype == sd.float64 and x.grad.tolist() == [3.0, 3.0]
    assert not x.long().requires_grad
