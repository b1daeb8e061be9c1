"""The feature pyramid against a NumPy reference written from the paper's definition
(1x1 laterals, nearest 2x upsampling added from the coarsest level down, 3x3 smoothing),
its gradients against finite differences, and torchvision's module with the same weights."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import shendu as sd
from shendu.vision.ops import FeaturePyramidNetwork

rng = np.random.default_rng(7)


def conv_ref(x, w, b):
    """Cross-correlation with stride 1 and 'same' padding for odd kernels."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))  # (N, C, H, W, k, k)
    return np.einsum("nchwij,ocij->nohw", win, w) + b[None, :, None, None]


def fpn_ref(fpn, maps):
    w = [(np.asarray(c.weight), np.asarray(c.bias)) for c in fpn.inner_blocks]
    v = [(np.asarray(c.weight), np.asarray(c.bias)) for c in fpn.layer_blocks]
    top = conv_ref(maps[-1], *w[-1])
    out = [conv_ref(top, *v[-1])]
    for i in range(len(maps) - 2, -1, -1):
        top = conv_ref(maps[i], *w[i]) + top.repeat(2, 2).repeat(2, 3)
        out.insert(0, conv_ref(top, *v[i]))
    return out


def random_maps(channels, size, dtype=np.float64):
    return [rng.standard_normal((2, c, size >> i, size >> i)).astype(dtype)
            for i, c in enumerate(channels)]


def test_matches_the_definition_and_keeps_dict_keys():
    fpn = FeaturePyramidNetwork([3, 5, 4], 6).to(sd.float64)
    maps = random_maps([3, 5, 4], 8)
    got = fpn([sd.tensor(m) for m in maps])
    for g, want in zip(got, fpn_ref(fpn, maps)):
        np.testing.assert_allclose(np.asarray(g), want, rtol=1e-12, atol=1e-12)
    named = fpn({"p2": sd.tensor(maps[0]), "p3": sd.tensor(maps[1]), "p4": sd.tensor(maps[2])})
    assert list(named) == ["p2", "p3", "p4"]
    np.testing.assert_array_equal(np.asarray(named["p3"]), np.asarray(got[1]))


def test_the_coarse_level_reaches_the_fine_output():
    fpn = FeaturePyramidNetwork([2, 2], 3).to(sd.float64)
    fine, coarse = (sd.tensor(m, requires_grad=True) for m in random_maps([2, 2], 4))
    fpn([fine, coarse])[0].sum().backward()
    assert np.abs(np.asarray(coarse.grad)).sum() > 0


def test_gradients_match_finite_differences():
    fpn = FeaturePyramidNetwork([2, 3], 2).to(sd.float64)
    maps = random_maps([2, 3], 4)
    probe = [rng.standard_normal(m.shape[:1] + (2,) + m.shape[2:]) for m in maps]

    def loss(arrays):
        out = fpn([sd.tensor(a) for a in arrays])
        return sum(float((o * sd.tensor(p)).sum()) for o, p in zip(out, probe))

    inputs = [sd.tensor(m, requires_grad=True) for m in maps]
    out = fpn(inputs)
    sum((o * sd.tensor(p)).sum() for o, p in zip(out, probe)).backward()
    eps = 1e-6
    for k, m in enumerate(maps):
        numeric = np.zeros_like(m)
        for idx in np.ndindex(m.shape):
            plus = [a.copy() for a in maps]
            minus = [a.copy() for a in maps]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(inputs[k].grad), numeric, rtol=1e-6, atol=1e-8)
    weight = fpn.inner_blocks[1].weight
    assert weight.grad is not None and np.abs(np.asarray(weight.grad)).sum() > 0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"FeaturePyramidNetwork: in_channels_list .* \[0, 4\]"):
        FeaturePyramidNetwork([0, 4], 8)
    with pytest.raises(ValueError, match="FeaturePyramidNetwork: expected 2 maps, got 1"):
        FeaturePyramidNetwork([4, 4], 8)([sd.zeros(1, 4, 4, 4)])


@pytest.mark.torchvision
def test_torchvision_agreement():
    tv = pytest.importorskip("torchvision", reason="torchvision is not installed: the "
                             "pyramid was checked against the NumPy reference only")
    from collections import OrderedDict

    import torch

    ours = FeaturePyramidNetwork([3, 5, 4], 6)
    theirs = tv.ops.FeaturePyramidNetwork([3, 5, 4], 6)
    with torch.no_grad():
        for a, b in zip((*ours.inner_blocks, *ours.layer_blocks),
                        (*[m[0] for m in theirs.inner_blocks],
                         *[m[0] for m in theirs.layer_blocks])):
            b.weight.copy_(torch.tensor(np.asarray(a.weight)))
            b.bias.copy_(torch.tensor(np.asarray(a.bias)))
    maps = random_maps([3, 5, 4], 16, np.float32)
    want = theirs(OrderedDict((str(i), torch.tensor(m)) for i, m in enumerate(maps)))
    got = ours([sd.tensor(m) for m in maps])
    for g, w in zip(got, want.values()):
        # float32 sums of up to 9 * 6 products of unit-size terms, each level adding the
        # level above it: a few ulps of the outputs' magnitude
        np.testing.assert_allclose(np.asarray(g), w.detach().numpy(), rtol=1e-5, atol=1e-5)
