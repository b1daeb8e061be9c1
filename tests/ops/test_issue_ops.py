"""The ops named in issue 2 that the per-family files leave out, and every family again on
size-0, size-1 and broadcast shapes; all through ``check_op`` (NumPy reference, float64
finite differences, jvp, PyTorch when importable, non-contiguous inputs)."""
import numpy as np
import pytest
from op_helper import Arg, check_op, on, torch
from references import interpolate_ref

import shendu as sd
import shendu.nn.functional as F

rng = np.random.default_rng(0)
T = torch
TF = torch and torch.nn.functional


def r(*shape):
    return rng.standard_normal(shape)


def distinct(*shape):
    """Values without ties (max/min/argmax have one answer), in random order."""
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape).astype(np.float64) / max(n, 1) - 0.5


def tt(a):
    return T.from_numpy(np.asarray(a))


# ---------------------------------------------------------------------- not differentiable
ARG = [
    ("argmax_all", lambda x: x.argmax(), lambda x: np.argmax(x), lambda x: x.argmax()),
    ("argmax_dim", lambda x: sd.argmax(x, 1), lambda x: x.argmax(1), lambda x: x.argmax(1)),
    ("argmax_keep", lambda x: x.argmax(dim=-1, keepdim=True),
     lambda x: x.argmax(-1)[..., None], lambda x: x.argmax(-1, keepdim=True)),
    ("argmin_all", lambda x: x.argmin(), lambda x: np.argmin(x), lambda x: x.argmin()),
    ("argmin_axis", lambda x: sd.argmin(x, axis=0), lambda x: x.argmin(0),
     lambda x: x.argmin(0)),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn", ARG, ids=[a[0] for a in ARG])
@pytest.mark.parametrize("shape", [(3, 4), (1, 5), (4, 1)])
def test_argmax_argmin(name, fn, np_fn, t_fn, shape):
    out = check_op(fn, [distinct(*shape)], np_fn, t_fn)
    assert out[0].dtype == sd.int64 and not out[0].requires_grad


def test_one_hot():
    idx = np.array([[0, 3], [2, 2], [1, 0]])
    check_op(lambda: F.one_hot(sd.tensor(idx), 5), [], lambda: np.eye(5, dtype=np.int64)[idx],
             TF and (lambda: TF.one_hot(tt(idx), 5)))
    check_op(lambda: F.one_hot(sd.tensor(idx)), [], lambda: np.eye(4, dtype=np.int64)[idx],
             TF and (lambda: TF.one_hot(tt(idx))))  # num_classes=-1: max + 1
    empty = np.zeros((0,), np.int64)
    check_op(lambda: F.one_hot(sd.tensor(empty), 3), [], lambda: np.zeros((0, 3), np.int64),
             TF and (lambda: TF.one_hot(tt(empty), 3)))


# ---------------------------------------------------------------------- dropout
def _seeded_dropout(p, training=True):
    """Dropout with the generator reseeded on every call, so repeated calls (finite
    differences, jvp, the non-contiguous rerun) draw the same mask."""
    def fn(x):
        sd.manual_seed(7)
        return F.dropout(x, p, training=training)
    return fn


@pytest.mark.parametrize("shape", [(6, 5), (1, 8), (0, 3)])
def test_dropout_through_check_op(shape):
    x = r(*shape)
    # the mask is random: read it off the same seeded draw on ones, check it is a mask
    # scaled by 1/(1-p), and hold the op to "x times that" (inverted dropout)
    scaled_mask = _seeded_dropout(0.4)(sd.ones(*shape, dtype=sd.float64)).numpy()
    assert np.isin(scaled_mask, [0.0, 1 / 0.6]).all()
    out = check_op(_seeded_dropout(0.4), [x], lambda x: x * scaled_mask,
                   check_f32=False)[0].detach().numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.6)
    check_op(_seeded_dropout(0.4, training=False), [x], lambda x: x,
             TF and (lambda x: TF.dropout(x, 0.4, training=False)))
    check_op(_seeded_dropout(0.0), [x], lambda x: x, TF and (lambda x: TF.dropout(x, 0.0)))


# ---------------------------------------------------------------------- max/min with indices
MAXMIN_IDX = [
    ("max_dim", lambda x: x.max(1), lambda x: (x.max(1), x.argmax(1)), lambda x: x.max(1)),
    ("max_dim_keep", lambda x: sd.max(x, dim=-1, keepdim=True),
     lambda x: (x.max(-1, keepdims=True), x.argmax(-1)[..., None]),
     lambda x: T.max(x, dim=-1, keepdim=True)),
    ("min_dim", lambda x: x.min(0), lambda x: (x.min(0), x.argmin(0)), lambda x: x.min(0)),
    ("min_axis_kw", lambda x: sd.min(x, axis=1), lambda x: (x.min(1), x.argmin(1)),
     lambda x: T.min(x, 1)),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn", MAXMIN_IDX, ids=[m[0] for m in MAXMIN_IDX])
@pytest.mark.parametrize("shape", [(3, 4), (1, 4), (3, 1)])
def test_max_min_values_and_indices(name, fn, np_fn, t_fn, shape):
    values, indices = check_op(fn, [distinct(*shape)], np_fn, T and t_fn)
    assert indices.dtype == sd.int64 and not indices.requires_grad
    assert fn(sd.tensor(distinct(*shape))).values is not None  # a (values, indices) pair


# ---------------------------------------------------------------------- size-0, size-1, bcast
EDGE = [
    # reductions over size-1 and size-0 dims
    ("sum_size1", lambda x: x.sum(1), lambda x: x.sum(1), lambda x: x.sum(1), (3, 1)),
    ("sum_all_empty", lambda x: x.sum(), lambda x: x.sum(), lambda x: x.sum(), (0, 4)),
    ("sum_keep_empty", lambda x: x.sum(1, keepdim=True), lambda x: x.sum(1, keepdims=True),
     lambda x: x.sum(1, keepdim=True), (0, 4)),
    ("mean_size1", lambda x: x.mean(0), lambda x: x.mean(0), lambda x: x.mean(0), (1, 4)),
    ("mean_empty_rows", lambda x: x.mean(1), lambda x: x.mean(1), lambda x: x.mean(1), (0, 4)),
    ("var_size1_keep", lambda x: x.var(0, keepdim=True), lambda x: x.var(0, ddof=1,
                                                                         keepdims=True),
     lambda x: x.var(0, keepdim=True), (3, 1)),
    ("std_unbiased_false", lambda x: x.std(1, unbiased=False), lambda x: x.std(1),
     lambda x: x.std(1, unbiased=False), (1, 5)),
    ("var_unbiased_true", lambda x: x.var(1, unbiased=True), lambda x: x.var(1, ddof=1),
     lambda x: x.var(1, unbiased=True), (2, 5)),
    ("prod_size1", lambda x: x.prod(0), lambda x: x.prod(0), lambda x: x.prod(0), (1, 4)),
    ("prod_all", lambda x: x.prod(), lambda x: x.prod(), lambda x: x.prod(), (2, 3)),
    ("logsumexp_size1", lambda x: x.logsumexp(1), lambda x: np.log(np.exp(x).sum(1)),
     T and (lambda x: T.logsumexp(x, 1)), (3, 1)),
    ("logsumexp_empty_rows", lambda x: x.logsumexp(1), lambda x: np.log(np.exp(x).sum(1)),
     T and (lambda x: T.logsumexp(x, 1)), (0, 3)),
    ("norm_size1", lambda x: x.norm(dim=0), lambda x: np.abs(x[0]),
     lambda x: x.norm(dim=0), (1, 4)),
    ("norm_keep", lambda x: x.norm(dim=(1, 2), keepdim=True),
     lambda x: np.sqrt((x ** 2).sum((1, 2), keepdims=True)),
     lambda x: x.norm(dim=(1, 2), keepdim=True), (2, 3, 2)),
    ("cumsum_size1", lambda x: x.cumsum(1), lambda x: x.cumsum(1), lambda x: x.cumsum(1),
     (3, 1)),
    ("cumsum_empty", lambda x: x.cumsum(0), lambda x: x.cumsum(0), lambda x: x.cumsum(0),
     (0, 2)),
    ("cumsum_flat_axis", lambda x: x.cumsum(axis=-1), lambda x: x.cumsum(-1),
     lambda x: x.cumsum(-1), (2, 2, 3)),
    ("amax_empty_rows", lambda x: x.amax(1), lambda x: x.max(1), lambda x: x.amax(1), (0, 3)),
    # shapes
    ("reshape_empty", lambda x: x.reshape(3, 0), lambda x: x.reshape(3, 0),
     lambda x: x.reshape(3, 0), (0, 4)),
    ("view_size1", lambda x: x.view(-1), lambda x: x.reshape(-1), lambda x: x.view(-1), (1, 1)),
    ("flatten_empty", lambda x: x.flatten(), lambda x: x.reshape(-1), lambda x: x.flatten(),
     (2, 0, 3)),
    ("squeeze_size1_dim", lambda x: x.squeeze(-1), lambda x: x[..., 0],
     lambda x: x.squeeze(-1), (3, 1)),
    ("unsqueeze_empty", lambda x: x.unsqueeze(0), lambda x: x[None], lambda x: x.unsqueeze(0),
     (0, 2)),
    ("transpose_empty", lambda x: x.transpose(0, 1), lambda x: x.T, lambda x: x.transpose(0, 1),
     (0, 3)),
    ("permute_size1", lambda x: x.permute(1, 2, 0), lambda x: x.transpose(1, 2, 0),
     lambda x: x.permute(1, 2, 0), (1, 3, 1)),
    ("T_size1", lambda x: x.T, lambda x: x.T, lambda x: x.T, (1, 4)),
    ("expand_from_size1", lambda x: x.expand(3, 2, 4), lambda x: np.broadcast_to(x, (3, 2, 4)),
     lambda x: x.expand(3, 2, 4), (1, 4)),
    ("broadcast_to_empty", lambda x: x.broadcast_to((0, 3)), lambda x: np.broadcast_to(x, (0, 3)),
     lambda x: x.broadcast_to((0, 3)), (1, 3)),
    ("repeat_size1", lambda x: x.repeat(2, 3), lambda x: np.tile(x, (2, 3)),
     lambda x: x.repeat(2, 3), (1, 1)),
    ("repeat_new_dims", lambda x: x.repeat(2, 1, 2), lambda x: np.tile(x, (2, 1, 2)),
     lambda x: x.repeat(2, 1, 2), (3,)),
    ("flip_size1", lambda x: x.flip(0, 1), lambda x: x[::-1, ::-1],
     T and (lambda x: x.flip(0, 1)), (1, 3)),
    ("chunk_uneven", lambda x: x.chunk(3, 0), lambda x: np.split(x, [2, 4], 0),
     lambda x: x.chunk(3, 0), (5, 2)),
    ("split_size1", lambda x: x.split(1, 1), lambda x: np.split(x, [1, 2], 1),
     lambda x: x.split(1, 1), (2, 3)),
    ("split_sections_empty", lambda x: sd.split(x, [0, 2, 1], 0),
     lambda x: np.split(x, [0, 2], 0), T and (lambda x: T.split(x, [0, 2, 1], 0)), (3, 2)),
    ("pad_size1", lambda x: F.pad(x, (1, 1, 2, 0)), lambda x: np.pad(x, ((2, 0), (1, 1))),
     TF and (lambda x: TF.pad(x, (1, 1, 2, 0))), (1, 1)),
    ("getitem_empty_slice", lambda x: x[2:2], lambda x: x[2:2], lambda x: x[2:2], (3, 4)),
    ("getitem_ellipsis_none", lambda x: x[..., None, 0], lambda x: x[..., None, 0],
     lambda x: x[..., None, 0], (2, 1, 3)),
    ("getitem_neg_int", lambda x: x[-1, :, -2], lambda x: x[-1, :, -2],
     lambda x: x[-1, :, -2], (2, 3, 4)),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn,shape", EDGE, ids=[e[0] for e in EDGE])
def test_edge_shapes(name, fn, np_fn, t_fn, shape):
    check_op(fn, [r(*shape)], np_fn, t_fn)


MULTI_EDGE = [
    ("cat_with_empty", lambda a, b: sd.cat([a, b]), lambda a, b: np.concatenate([a, b]),
     lambda a, b: T.cat([a, b]), [(0, 3), (2, 3)]),
    ("cat_size1", lambda a, b: sd.cat([a, b], dim=1), lambda a, b: np.concatenate([a, b], 1),
     lambda a, b: T.cat([a, b], 1), [(2, 1), (2, 1)]),
    ("stack_empty", lambda a, b: sd.stack([a, b]), lambda a, b: np.stack([a, b]),
     lambda a, b: T.stack([a, b]), [(0, 2), (0, 2)]),
    ("where_bcast", lambda a, b: sd.where(on(a, np.array([[True], [False], [True]])), a, b),
     lambda a, b: np.where(np.array([[True], [False], [True]]), a, b),
     lambda a, b: T.where(tt(np.array([[True], [False], [True]])), a, b), [(1, 4), (4,)]),
    ("where_empty", lambda a, b: sd.where(on(a, np.zeros((0, 3), bool)), a, b),
     lambda a, b: np.where(np.zeros((0, 3), bool), a, b),
     lambda a, b: T.where(tt(np.zeros((0, 3), bool)), a, b), [(0, 3), (3,)]),
    ("maximum_size1_bcast", sd.maximum, np.maximum, lambda a, b: T.maximum(a, b),
     [(3, 1), (1, 4)]),
    ("minimum_empty", sd.minimum, np.minimum, lambda a, b: T.minimum(a, b), [(0, 4), (4,)]),
    ("clamp_tensor_bounds", lambda x, lo: sd.clamp(x, min=lo), lambda x, lo: np.maximum(x, lo),
     lambda x, lo: T.clamp(x, min=lo), [(3, 4), (4,)]),
    ("matmul_bcast_batch", lambda a, b: a @ b, lambda a, b: a @ b, lambda a, b: a @ b,
     [(2, 1, 3, 4), (5, 4, 2)]),
    ("matmul_vec", lambda a, b: sd.matmul(a, b), np.matmul, lambda a, b: T.matmul(a, b),
     [(4,), (2, 4, 3)]),
    ("matmul_empty_inner", lambda a, b: a @ b, lambda a, b: a @ b, lambda a, b: a @ b,
     [(2, 0), (0, 3)]),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn,shapes", MULTI_EDGE, ids=[e[0] for e in MULTI_EDGE])
def test_edge_shapes_multi_input(name, fn, np_fn, t_fn, shapes):
    check_op(fn, [r(*s) for s in shapes], np_fn, T and t_fn)


def test_indexing_ops_on_edge_shapes():
    x = r(3, 1)
    idx = np.array([[0], [0], [0], [0]])
    check_op(lambda a: a.gather(0, on(a, idx[:3])), [x],
             lambda a: np.take_along_axis(a, idx[:3], 0),
             T and (lambda a: a.gather(0, tt(idx[:3]))))
    check_op(lambda a: a.index_select(0, on(a, np.array([], np.int64))), [x],
             lambda a: a[:0], T and (lambda a: a.index_select(0, tt(np.array([], np.int64)))))
    def scatter_rows(a, s):
        out = a.copy()
        out[[2, 0], 0] = s[:, 0]
        return out
    check_op(lambda a, s: a.scatter(0, on(a, np.array([[2], [0]])), s), [r(3, 1), r(2, 1)],
             scatter_rows, T and (lambda a, s: a.scatter(0, tt(np.array([[2], [0]])), s)))
    mask = np.array([True, False, True])
    check_op(lambda a: a.masked_fill(on(a, mask[:, None]), 0.5), [x],
             lambda a: np.where(mask[:, None], 0.5, a),
             T and (lambda a: a.masked_fill(tt(mask[:, None]), 0.5)))
    check_op(lambda a: a[on(a, np.array([0, 0, 2]))], [x], lambda a: a[[0, 0, 2]],
             T and (lambda a: a[tt(np.array([0, 0, 2]))]))  # repeated rows accumulate
    check_op(lambda a: a[on(a, np.zeros((3, 1), bool))], [x], lambda a: a[:0, 0],
             T and (lambda a: a[tt(np.zeros((3, 1), bool))]))


# ---------------------------------------------------------------------- losses x reductions
REDUCTIONS = ["mean", "sum", "none"]
y_pm = np.array([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
t_cls = np.array([0, 2, 1, 2, 0, 1])
t_ign = np.array([0, -100, 1, 2, -100, 1])
p_cls = rng.dirichlet(np.ones(3), 6)
t_prob = rng.uniform(0, 1, (6, 3))


def _np_reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](loss)


def _np_log_softmax(x):
    m = x.max(1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(1, keepdims=True))


LOSSES = [
    ("mse", lambda a, b, red: F.mse_loss(a, b, reduction=red),
     lambda a, b, red: _np_reduce((a - b) ** 2, red),
     lambda a, b, red: TF.mse_loss(a, b, reduction=red), [(6, 3), (6, 3)]),
    ("l1", lambda a, b, red: F.l1_loss(a, b, reduction=red),
     lambda a, b, red: _np_reduce(np.abs(a - b), red),
     lambda a, b, red: TF.l1_loss(a, b, reduction=red), [(6, 3), (6, 3)]),
    ("smooth_l1", lambda a, b, red: F.smooth_l1_loss(a, b, reduction=red, beta=0.8),
     lambda a, b, red: _np_reduce(np.where(np.abs(a - b) < 0.8, 0.5 * (a - b) ** 2 / 0.8,
                                           np.abs(a - b) - 0.4), red),
     lambda a, b, red: TF.smooth_l1_loss(a, b, reduction=red, beta=0.8), [(6, 3), (6, 3)]),
    ("bce", lambda p, red: F.binary_cross_entropy(p, on(p, t_prob), reduction=red),
     lambda p, red: _np_reduce(-(t_prob * np.log(p) + (1 - t_prob) * np.log(1 - p)), red),
     lambda p, red: TF.binary_cross_entropy(p, tt(t_prob), reduction=red), ["prob"]),
    ("bce_weight", lambda p, t, w, red: F.binary_cross_entropy(p, t, weight=w, reduction=red),
     lambda p, t, w, red: _np_reduce(-(t * np.log(p) + (1 - t) * np.log(1 - p)) * w, red),
     lambda p, t, w, red: TF.binary_cross_entropy(p, t, weight=w, reduction=red),
     ["prob", Arg(t_prob), Arg(np.array([1.0, 0.5, 2.0]))]),
    ("bce_logits", lambda x, red: F.binary_cross_entropy_with_logits(x, on(x, t_prob),
                                                                     reduction=red),
     lambda x, red: _np_reduce(np.logaddexp(0, x) - t_prob * x, red),
     lambda x, red: TF.binary_cross_entropy_with_logits(x, tt(t_prob), reduction=red),
     [(6, 3)]),
    ("hinge_embedding", lambda x, red: F.hinge_embedding_loss(x, on(x, y_pm), margin=0.7,
                                                              reduction=red),
     lambda x, red: _np_reduce(np.where(y_pm == 1, x, np.maximum(0, 0.7 - x)), red),
     lambda x, red: TF.hinge_embedding_loss(x, tt(y_pm), margin=0.7, reduction=red), [(6,)]),
    ("multi_margin", lambda x, red: F.multi_margin_loss(x, on(x, t_cls), reduction=red),
     None, lambda x, red: TF.multi_margin_loss(x, tt(t_cls), reduction=red), [(6, 3)]),
    ("multi_margin_weight_p2", lambda x, w, red: F.multi_margin_loss(
        x, on(x, t_cls), p=2, weight=w, reduction=red),
     None, lambda x, w, red: TF.multi_margin_loss(x, tt(t_cls), p=2, weight=w, reduction=red),
     [(6, 3), Arg(np.array([0.5, 1.0, 2.0]))]),
    ("nll", lambda x, red: F.nll_loss(F.log_softmax(x, 1), on(x, t_cls), reduction=red),
     lambda x, red: _np_reduce(-_np_log_softmax(x)[np.arange(6), t_cls], red),
     lambda x, red: TF.nll_loss(TF.log_softmax(x, 1), tt(t_cls), reduction=red), [(6, 3)]),
    ("nll_ignore_index", lambda x, red: F.nll_loss(F.log_softmax(x, 1), on(x, t_ign),
                                                   reduction=red),
     None, lambda x, red: TF.nll_loss(TF.log_softmax(x, 1), tt(t_ign), reduction=red),
     [(6, 3)]),
    ("ce_index", lambda x, red: F.cross_entropy(x, on(x, t_cls), reduction=red),
     lambda x, red: _np_reduce(-_np_log_softmax(x)[np.arange(6), t_cls], red),
     lambda x, red: TF.cross_entropy(x, tt(t_cls), reduction=red), [(6, 3)]),
    ("ce_probabilities", lambda x, red: F.cross_entropy(x, on(x, p_cls), reduction=red),
     lambda x, red: _np_reduce(-(p_cls * _np_log_softmax(x)).sum(1), red),
     lambda x, red: TF.cross_entropy(x, tt(p_cls), reduction=red), [(6, 3)]),
    ("ce_ignore_index_smoothing", lambda x, red: F.cross_entropy(
        x, on(x, t_ign), reduction=red, label_smoothing=0.15),
     None, lambda x, red: TF.cross_entropy(x, tt(t_ign), reduction=red, label_smoothing=0.15),
     [(6, 3)]),
    ("ce_probabilities_smoothing", lambda x, red: F.cross_entropy(
        x, on(x, p_cls), reduction=red, label_smoothing=0.3),
     lambda x, red: _np_reduce(-((0.7 * p_cls + 0.1) * _np_log_softmax(x)).sum(1), red),
     lambda x, red: TF.cross_entropy(x, tt(p_cls), reduction=red, label_smoothing=0.3),
     [(6, 3)]),
]


def _loss_inputs(shapes):
    return [s if isinstance(s, Arg) else rng.uniform(0.05, 0.95, (6, 3)) if s == "prob"
            else r(*s) for s in shapes]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn,np_fn,t_fn,shapes", LOSSES, ids=[c[0] for c in LOSSES])
def test_losses_with_every_reduction(name, fn, np_fn, t_fn, shapes, reduction):
    check_op(lambda *xs: fn(*xs, reduction), _loss_inputs(shapes),
             np_fn and (lambda *xs: np_fn(*xs, reduction)),
             TF and (lambda *xs: t_fn(*xs, reduction)))


def test_hinge_embedding_loss_with_targets_other_than_plus_minus_one():
    y = np.array([1.0, 0.0, -1.0, 2.0, 0.0])
    x = np.array([0.3, -0.4, 0.2, 1.7, 2.5])
    check_op(lambda x: F.hinge_embedding_loss(x, on(x, y), reduction="none"), [x],
             lambda x: np.where(y != -1, x, 0) + np.where(y != 1, np.maximum(0, 1 - x), 0),
             TF and (lambda x: TF.hinge_embedding_loss(x, tt(y), reduction="none")))


def test_loss_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="mse_loss: reduction must be one of"):
        F.mse_loss(sd.ones(2), sd.ones(2), reduction="avg")
    with pytest.raises(ValueError, match="cross_entropy: reduction must be one of"):
        F.cross_entropy(sd.ones(2, 3), sd.tensor([0, 1]), reduction="avg")


# ---------------------------------------------------------------------- fixed: bilinear
@pytest.mark.parametrize("lead", [(5,), (1,), (2, 3), (0,)])
def test_bilinear_batched_matches_torch(lead):
    x1, x2, w, b = r(*lead, 3), r(*lead, 4), r(2, 3, 4), r(2)
    check_op(F.bilinear, [x1, x2, w, b],
             lambda x1, x2, w, b: np.einsum("...i,kij,...j->...k", x1, w, x2) + b,
             TF and TF.bilinear)
    check_op(F.bilinear, [x1, x2, w],
             lambda x1, x2, w: np.einsum("...i,kij,...j->...k", x1, w, x2),
             TF and TF.bilinear)


def test_bilinear_shape_errors():
    with pytest.raises(ValueError, match=r"bilinear: inputs of shapes \(5, 3\) and \(4, 4\)"):
        F.bilinear(sd.ones(5, 3), sd.ones(4, 4), sd.ones(2, 3, 4))
    with pytest.raises(ValueError, match=r"bilinear: bias must have shape \(2,\)"):
        F.bilinear(sd.ones(5, 3), sd.ones(5, 4), sd.ones(2, 3, 4), sd.ones(3))


# ---------------------------------------------------------------------- fixed: interpolate
INTERP = [
    dict(scale_factor=1.7, mode="bilinear", align_corners=False),
    dict(scale_factor=0.6, mode="bilinear", align_corners=False),
    dict(scale_factor=(1.5, 2.3), mode="bilinear", align_corners=False),
    dict(scale_factor=1.7, mode="bilinear", align_corners=False, recompute_scale_factor=True),
    dict(scale_factor=2.5, mode="bilinear", align_corners=True),
    dict(size=(4, 9), mode="bilinear", align_corners=False),
    dict(scale_factor=1.7, mode="nearest"),
    dict(scale_factor=0.5, mode="nearest"),
    dict(size=(7, 2), mode="nearest"),
]


@pytest.mark.parametrize("kw", INTERP, ids=[str(sorted(k.items())) for k in INTERP])
def test_interpolate_matches_torch_for_any_scale(kw):
    check_op(lambda x: F.interpolate(x, **kw), [r(2, 2, 3, 5)],
             lambda x: interpolate_ref(x, **kw),
             TF and (lambda x: TF.interpolate(x, **kw)))


def test_interpolate_linear_1d_and_source_index_rule():
    # align_corners=False, scale 1.5: output i reads input (i + 0.5) / 1.5 - 0.5, clamped at 0
    x = np.array([[[0.0, 10.0, 20.0, 30.0]]])
    out = F.interpolate(sd.tensor(x), scale_factor=1.5, mode="linear").numpy()
    src = np.clip((np.arange(6) + 0.5) / 1.5 - 0.5, 0, 3)
    np.testing.assert_allclose(out[0, 0], 10.0 * src, atol=1e-6)
    check_op(lambda x: F.interpolate(x, scale_factor=1.3, mode="linear"), [r(2, 3, 6)],
             lambda x: interpolate_ref(x, scale_factor=1.3, mode="linear"),
             TF and (lambda x: TF.interpolate(x, scale_factor=1.3, mode="linear")))
    with pytest.raises(ValueError, match="interpolate: mode 'bilinear' needs 4-D input"):
        F.interpolate(sd.ones(1, 1, 4), scale_factor=2, mode="bilinear")


# ---------------------------------------------------------------------- fixed: gaussian NLL
def _np_gnll(x, t, v, full, red):
    v = np.maximum(v, 1e-6)
    loss = 0.5 * (np.log(v) + (x - t) ** 2 / v) + (0.5 * np.log(2 * np.pi) if full else 0)
    return _np_reduce(loss, red)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", [((4, 3), (4,)), ((4, 3), (4, 3)), ((4, 3), (4, 1)),
                                    ((2, 3, 5), (2, 1, 5)), ((2, 3, 5), (2, 3)), ((5,), ())],
                         ids=str)
def test_gaussian_nll_loss_var_shapes(shapes, reduction):
    ishape, vshape = shapes
    t = r(*ishape)
    v_shape_np = vshape + (1,) if vshape == ishape[:-1] else vshape

    def np_fn(x, t, v):
        return _np_gnll(x, t, v.reshape(v_shape_np), True, reduction)

    check_op(lambda x, t, v: F.gaussian_nll_loss(x, t, v, full=True, reduction=reduction),
             [r(*ishape), Arg(t), rng.uniform(0.2, 2.0, vshape)], np_fn,
             TF and (lambda x, t, v: TF.gaussian_nll_loss(x, t, v, full=True,
                                                          reduction=reduction)))


def test_gaussian_nll_loss_number_var_clamp_and_errors():
    x, t = r(3, 2), r(3, 2)
    check_op(lambda x, t: F.gaussian_nll_loss(x, t, 0.5), [x, Arg(t)],
             lambda x, t: _np_gnll(x, t, 0.5, False, "mean"),
             TF and (lambda x, t: TF.gaussian_nll_loss(x, t, 0.5)))
    # a variance below eps counts as eps in the value, but its gradient still flows (torch)
    v = np.array([1e-9, 0.5, 2.0])
    check_op(lambda x, t, v: F.gaussian_nll_loss(x, t, v, reduction="sum"),
             [x[:, 0], Arg(t[:, 0]), Arg(v)],
             lambda x, t, v: _np_gnll(x, t, v, False, "sum"),
             TF and (lambda x, t, v: TF.gaussian_nll_loss(x, t, v, reduction="sum")))
    vt = sd.tensor(v, requires_grad=True)
    F.gaussian_nll_loss(sd.tensor(x[:, 0]), sd.tensor(t[:, 0]), vt, reduction="sum").backward()
    assert np.isfinite(vt.grad.numpy()).all() and vt.grad.numpy()[0] != 0
    with pytest.raises(ValueError, match=r"gaussian_nll_loss: var of shape \(2,\) does not fit"):
        F.gaussian_nll_loss(sd.ones(3, 2), sd.ones(3, 2), sd.ones(2))
    with pytest.raises(ValueError, match="gaussian_nll_loss: var has negative entries"):
        F.gaussian_nll_loss(sd.ones(3), sd.ones(3), -sd.ones(3))


# ---------------------------------------------------------------------- nn.functional edges
def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


NN_EDGE = [
    ("softmax_size1", lambda x: F.softmax(x, 1), lambda x: _np_softmax(x, 1),
     TF and (lambda x: TF.softmax(x, 1)), [(3, 1)]),
    ("softmax_empty_batch", lambda x: F.softmax(x, -1), lambda x: _np_softmax(x, -1),
     TF and (lambda x: TF.softmax(x, -1)), [(0, 4)]),
    ("log_softmax_batch1", lambda x: F.log_softmax(x, 1), lambda x: np.log(_np_softmax(x, 1)),
     TF and (lambda x: TF.log_softmax(x, 1)), [(1, 5)]),
    ("linear_batch0", F.linear, lambda x, w, b: x @ w.T + b, TF and TF.linear,
     [(0, 3), (2, 3), (2,)]),
    ("linear_batch1_bcast", F.linear, lambda x, w: x @ w.T, TF and TF.linear,
     [(2, 1, 3), (4, 3)]),
    ("layer_norm_batch1", lambda x, w, b: F.layer_norm(x, (4,), w, b),
     lambda x, w, b: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
     * w + b,
     TF and (lambda x, w, b: TF.layer_norm(x, (4,), w, b)), [(1, 4), (4,), (4,)]),
    ("batch_norm_eval_batch1", lambda x: F.batch_norm(x, on(x, np.zeros(3)),
                                                      on(x, np.ones(3)), training=False),
     lambda x: x / np.sqrt(1 + 1e-5),
     TF and (lambda x: TF.batch_norm(x, T.zeros(3, dtype=T.float64), T.ones(3, dtype=T.float64),
                                     training=False)), [(1, 3)]),
    ("mse_size1", F.mse_loss, lambda a, b: ((a - b) ** 2).mean(), TF and TF.mse_loss,
     [(1, 1), (1, 1)]),
    ("l1_sum_empty", lambda a, b: F.l1_loss(a, b, reduction="sum"),
     lambda a, b: np.abs(a - b).sum(), TF and (lambda a, b: TF.l1_loss(a, b, reduction="sum")),
     [(0, 3), (0, 3)]),
]


@pytest.mark.parametrize("name,fn,np_fn,t_fn,shapes", NN_EDGE, ids=[e[0] for e in NN_EDGE])
def test_nn_functional_edge_shapes(name, fn, np_fn, t_fn, shapes):
    check_op(fn, [r(*s) for s in shapes], np_fn, t_fn)


def test_embedding_and_cross_entropy_edges():
    w = r(4, 3)
    empty = np.zeros((2, 0), np.int64)
    check_op(lambda w: F.embedding(on(w, empty), w), [w], lambda w: w[empty],
             TF and (lambda w: TF.embedding(tt(empty), w)))
    one = np.array([2])
    check_op(lambda x: F.cross_entropy(x, on(x, one)), [r(1, 4)],
             lambda x: -np.log(_np_softmax(x, 1))[0, 2],
             TF and (lambda x: TF.cross_entropy(x, tt(one))))
    all_ignored = np.array([-100, -100])
    check_op(lambda x: F.cross_entropy(x, on(x, all_ignored), reduction="sum"), [r(2, 3)],
             lambda x: 0.0, TF and (lambda x: TF.cross_entropy(x, tt(all_ignored),
                                                              reduction="sum")))


SPELLINGS = [  # (PyTorch spelling, NumPy spelling, NumPy reference)
    (lambda x: x.sum(dim=1, keepdim=True), lambda x: x.sum(axis=1, keepdims=True),
     lambda a: a.sum(1, keepdims=True)),
    (lambda x: x.var(dim=0), lambda x: x.var(axis=0), lambda a: a.var(0, ddof=1)),
    (lambda x: x.std(dim=1, keepdim=True), lambda x: x.std(axis=1, keepdims=True),
     lambda a: a.std(1, ddof=1, keepdims=True)),
    (lambda x: x.max(dim=1).values, lambda x: x.max(axis=1).values, lambda a: a.max(1)),
    (lambda x: x.amin(dim=(0, 1)), lambda x: x.amin(axis=(0, 1)), lambda a: a.min()),
    (lambda x: x.argmax(dim=1, keepdim=True), lambda x: x.argmax(axis=1, keepdims=True),
     lambda a: a.argmax(1)[:, None]),
    (lambda x: x.prod(dim=0), lambda x: x.prod(axis=0), lambda a: a.prod(0)),
    (lambda x: x.logsumexp(dim=1), lambda x: x.logsumexp(axis=1),
     lambda a: np.log(np.exp(a).sum(1))),
    (lambda x: x.norm(dim=1), lambda x: x.norm(axis=1), lambda a: np.linalg.norm(a, axis=1)),
    (lambda x: x.cumsum(dim=1), lambda x: x.cumsum(axis=1), lambda a: a.cumsum(1)),
    (lambda x: sd.cat([x, x], dim=1), lambda x: sd.cat([x, x], axis=1),
     lambda a: np.concatenate([a, a], 1)),
    (lambda x: sd.stack([x, x], dim=1), lambda x: sd.stack([x, x], axis=1),
     lambda a: np.stack([a, a], 1)),
    (lambda x: x[None].squeeze(dim=0), lambda x: x[None].squeeze(axis=0), lambda a: a),
    (lambda x: x.flip(dims=(0,)), lambda x: sd.flip(x, axis=0), lambda a: a[::-1]),
]


@pytest.mark.parametrize("torch_style,numpy_style,ref", SPELLINGS)
def test_dim_keepdim_and_axis_keepdims_spellings(torch_style, numpy_style, ref):
    a = distinct(3, 4) + 1.0
    x = sd.tensor(a)
    np.testing.assert_allclose(torch_style(x).numpy(), ref(a), rtol=1e-12)
    np.testing.assert_allclose(numpy_style(x).numpy(), ref(a), rtol=1e-12)
