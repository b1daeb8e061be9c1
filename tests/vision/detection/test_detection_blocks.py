"""Detection building blocks against loops written from their definitions (torchvision's
AnchorGenerator, BoxCoder, Matcher and BalancedPositiveNegativeSampler)."""
import math

import numpy as np
import pytest
from op_helper import check_op

import shendu as sd
from shendu.vision.detection import (
    AnchorGenerator,
    BalancedPositiveNegativeSampler,
    BoxCoder,
    Matcher,
)

rng = np.random.default_rng(1400)


# -------------------------------------------------------------- anchors
def ref_anchors(image_hw, grids, sizes, ratios):
    out = []
    for (gh, gw), ss, rs in zip(grids, sizes, ratios):
        sh, sw = image_hw[0] // gh, image_hw[1] // gw
        for y in range(gh):
            for x in range(gw):
                for r in rs:
                    for s in ss:
                        w, h = s / math.sqrt(r), s * math.sqrt(r)
                        base = [round(-w / 2), round(-h / 2), round(w / 2), round(h / 2)]
                        out.append([base[0] + x * sw, base[1] + y * sh,
                                    base[2] + x * sw, base[3] + y * sh])
    return np.array(out, float)


def test_anchor_generator_matches_the_loop_reference():
    sizes, ratios = ((16, 24), (48,)), ((0.5, 1.0, 2.0), (1.0, 3.0))
    gen = AnchorGenerator(sizes, ratios)
    assert gen.num_anchors_per_location() == [6, 2]
    images = sd.zeros(2, 3, 64, 48)
    feats = [sd.zeros(2, 4, 8, 6), sd.zeros(2, 4, 3, 2)]  # strides (8, 8) and (21, 24)
    got = gen(images, feats)
    want = ref_anchors((64, 48), [(8, 6), (3, 2)], sizes, ratios)
    assert len(got) == 2 and got[0].shape == (8 * 6 * 6 + 3 * 2 * 2, 4)
    for a in got:
        np.testing.assert_array_equal(a.numpy(), want)
    # areas stay near size^2 and h / w near the ratio (up to rounding to whole pixels)
    w = want[:, 2] - want[:, 0]
    h = want[:, 3] - want[:, 1]
    assert np.allclose(np.sqrt(w * h)[:6], [16, 24, 16, 24, 16, 24], rtol=0.1)
    assert np.allclose((h / w)[:6], [0.5, 0.5, 1, 1, 2, 2], rtol=0.15)


def test_anchor_rounding_is_half_to_even():
    # size 5, ratio 1: corners at +-2.5 round to +-2 (torch.round), not +-3
    a = AnchorGenerator(((5,),), ((1.0,),))(sd.zeros(1, 1, 4, 4), [sd.zeros(1, 1, 1, 1)])[0]
    assert a.numpy().tolist() == [[-2.0, -2.0, 2.0, 2.0]]
    assert "sizes=((5,),)" in repr(AnchorGenerator(((5,),), ((1.0,),)))


def test_anchor_offset_centres_anchors_in_their_cells():
    # a 2x2 grid of stride 16 on a 32-pixel image: centres at 8 and 24, not 0 and 16
    gen = AnchorGenerator(((8,),), ((1.0,),), offset=0.5)
    got = gen(sd.zeros(1, 1, 32, 32), [sd.zeros(1, 1, 2, 2)])[0].numpy()
    assert got.tolist() == [[4, 4, 12, 12], [20, 4, 28, 12], [4, 20, 12, 28],
                            [20, 20, 28, 28]]
    assert "offset=0.5" in repr(gen)
    with pytest.raises(ValueError, match=r"AnchorGenerator: offset must lie in \[0, 1\)"):
        AnchorGenerator(((8,),), ((1.0,),), offset=1.0)


def test_anchor_generator_errors():
    with pytest.raises(ValueError, match="AnchorGenerator: 2 levels of sizes but 3"):
        AnchorGenerator(((8,), (16,)), ((1.0,), (1.0,), (2.0,)))
    with pytest.raises(ValueError, match=r"aspect ratios must be positive, level 0 has \(0.0,"):
        AnchorGenerator(((8,),), ((0.0, 1.0),))
    with pytest.raises(ValueError, match="1 feature maps but anchors for 2 levels"):
        AnchorGenerator(((8,), (16,)), ((1.0,),) * 2)(sd.zeros(1, 1, 8, 8), [sd.zeros(1, 1, 2, 2)])


@pytest.mark.torchvision
def test_anchor_generator_torchvision_agreement():
    pytest.importorskip("torchvision", reason="torchvision is not installed: the anchors "
                        "were checked against the loop reference only")
    import torch
    from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchors
    from torchvision.models.detection.image_list import ImageList
    sizes, ratios = ((16, 24), (48,)), ((0.5, 1.0, 2.0), (1.0, 3.0))
    feats = [torch.zeros(1, 4, 8, 6), torch.zeros(1, 4, 3, 2)]
    want = TVAnchors(sizes, ratios)(ImageList(torch.zeros(1, 3, 64, 48), [(64, 48)]), feats)
    got = AnchorGenerator(sizes, ratios)(sd.zeros(1, 3, 64, 48),
                                         [sd.zeros(1, 4, 8, 6), sd.zeros(1, 4, 3, 2)])
    np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())


# -------------------------------------------------------------- box coder
def rand_boxes(n):
    xy = rng.uniform(0, 50, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(2, 30, (n, 2))], 1)


def ref_encode(gt, anchors, weights):
    out = np.zeros((len(gt), 4))
    for i, (g, a) in enumerate(zip(gt, anchors)):
        aw, ah = a[2] - a[0], a[3] - a[1]
        gw, gh = g[2] - g[0], g[3] - g[1]
        out[i] = [weights[0] * ((g[0] + gw / 2) - (a[0] + aw / 2)) / aw,
                  weights[1] * ((g[1] + gh / 2) - (a[1] + ah / 2)) / ah,
                  weights[2] * math.log(gw / aw), weights[3] * math.log(gh / ah)]
    return out


def ref_decode(codes, anchors, weights, clip):
    out = np.zeros(codes.shape)
    for i, a in enumerate(anchors):
        aw, ah = a[2] - a[0], a[3] - a[1]
        cx, cy = a[0] + aw / 2, a[1] + ah / 2
        for j in range(0, codes.shape[1], 4):
            dx, dy, dw, dh = codes[i, j:j + 4] / np.asarray(weights)
            w, h = math.exp(min(dw, clip)) * aw, math.exp(min(dh, clip)) * ah
            px, py = dx * aw + cx, dy * ah + cy
            out[i, j:j + 4] = [px - w / 2, py - h / 2, px + w / 2, py + h / 2]
    return out


def test_box_coder_encode_decode_against_the_formulas():
    weights = (10.0, 10.0, 5.0, 5.0)
    coder = BoxCoder(weights)
    gt, anchors = rand_boxes(6), rand_boxes(6)
    codes = coder.encode_single(sd.tensor(gt), sd.tensor(anchors))
    np.testing.assert_allclose(codes.numpy(), ref_encode(gt, anchors, weights), rtol=1e-12)
    back = coder.decode_single(codes, sd.tensor(anchors))
    np.testing.assert_allclose(back.numpy(), gt, rtol=1e-12, atol=1e-10)
    multi = rng.normal(0, 1, (6, 8))  # two classes' offsets per anchor
    np.testing.assert_allclose(coder.decode_single(sd.tensor(multi), sd.tensor(anchors)).numpy(),
                               ref_decode(multi, anchors, weights, coder.bbox_xform_clip),
                               rtol=1e-12)
    # per-image lists
    parts = coder.encode([sd.tensor(gt[:2]), sd.tensor(gt[2:])],
                         [sd.tensor(anchors[:2]), sd.tensor(anchors[2:])])
    assert [p.shape for p in parts] == [(2, 4), (4, 4)]
    dec = coder.decode(sd.cat(parts, 0), [sd.tensor(anchors[:2]), sd.tensor(anchors[2:])])
    assert dec.shape == (6, 1, 4)
    np.testing.assert_allclose(dec.numpy()[:, 0], gt, rtol=1e-12, atol=1e-10)


def test_box_coder_clamps_the_log_scale():
    coder = BoxCoder()
    a = sd.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=sd.float64)
    out = coder.decode_single(sd.tensor([[0.0, 0.0, 100.0, 100.0]], dtype=sd.float64), a)
    half = 1000.0 / 16  # exp(log(1000 / 16)) times the width 2, halved
    np.testing.assert_allclose(out.numpy(), [[1 - half, 1 - half, 1 + half, 1 + half]])
    assert np.isfinite(out.numpy()).all()


def test_box_coder_gradients():
    anchors = rand_boxes(3)
    at = sd.tensor(anchors)
    w = (10.0, 10.0, 5.0, 5.0)
    check_op(lambda c: BoxCoder(w).decode_single(c, at), [rng.normal(0, 0.5, (3, 4))],
             lambda c: ref_decode(c, anchors, w, math.log(1000 / 16)))
    # (float64 anchors promote float32 boxes, as in PyTorch: no float32 pass for encode)
    check_op(lambda g: BoxCoder(w).encode_single(g, at), [rand_boxes(3)],
             lambda g: ref_encode(g, anchors, w), check_f32=False)


def test_box_coder_errors():
    with pytest.raises(ValueError, match=r"BoxCoder: weights must be \(wx, wy, ww, wh\)"):
        BoxCoder((1.0, 1.0))
    with pytest.raises(ValueError, match=r"reference_boxes \(2, 4\) and proposals \(3, 4\)"):
        BoxCoder().encode_single(sd.zeros(2, 4), sd.zeros(3, 4))
    with pytest.raises(ValueError, match=r"rel_codes \(2, 6\) must be \(K, 4 \* C\) with K = 2"):
        BoxCoder().decode_single(sd.zeros(2, 6), sd.zeros(2, 4))


# -------------------------------------------------------------- matcher
def ref_match(q, high, low, allow):
    m, n = q.shape
    out = []
    for j in range(n):
        best = 0
        for i in range(m):
            if q[i, j] > q[best, j]:
                best = i
        v = q[best, j]
        out.append(best if v >= high else (-1 if v < low else -2))
        if allow and any(q[i, j] == max(q[i]) for i in range(m)):
            out[-1] = best  # the best ground truth of this prediction, as torchvision
    return out


@pytest.mark.parametrize("allow", [False, True])
def test_matcher_matches_the_loop_reference(allow):
    for _ in range(10):
        q = np.round(rng.random((4, 30)) * 0.9, 2)  # rounding makes ties
        got = Matcher(0.6, 0.3, allow)(sd.tensor(q))
        assert got.dtype == sd.int64
        assert got.numpy().tolist() == ref_match(q, 0.6, 0.3, allow)


def test_matcher_hand_cases():
    q = sd.tensor([[0.3, 0.8], [0.4, 0.1]])
    # thresholds: 0.4 is between (-2), 0.8 matches; low-quality: gt 1's best anchor is 0
    assert Matcher(0.5, 0.35)(q).tolist() == [-2, 0]
    assert Matcher(0.5, 0.35, True)(q).tolist() == [1, 0]
    assert Matcher(0.5, 0.5)(q).tolist() == [-1, 0]  # below low -> negative
    # low-quality restore gives the prediction its own best ground truth, not the gt asking
    q2 = sd.tensor([[0.2, 0.1], [0.1, 0.05]])
    assert Matcher(0.5, 0.3, True)(q2).tolist() == [0, -1]
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        Matcher(0.5, 0.3)(sd.zeros(0, 5))
    with pytest.raises(ValueError, match="no proposal boxes"):
        Matcher(0.5, 0.3)(sd.zeros(2, 0))
    with pytest.raises(ValueError, match="low_threshold 0.7 is above high_threshold 0.5"):
        Matcher(0.5, 0.7)


# -------------------------------------------------------------- sampler
def test_balanced_sampler_counts_and_labels():
    sampler = BalancedPositiveNegativeSampler(16, 0.25)
    many_pos = sd.tensor(np.r_[np.full(10, 2), np.zeros(30, np.int64), np.full(5, -1)])
    few_pos = sd.tensor(np.r_[np.full(2, 1), np.zeros(30, np.int64)])
    few_neg = sd.tensor(np.r_[np.full(20, 1), np.zeros(3, np.int64)])
    pos, neg = sampler([many_pos, few_pos, few_neg])
    for p, n, lab, (np_, nn_) in zip(pos, neg, [many_pos, few_pos, few_neg],
                                      [(4, 12), (2, 14), (4, 3)]):
        p, n, lab = p.numpy(), n.numpy(), lab.numpy()
        assert p.dtype == np.uint8 and n.dtype == np.uint8
        assert (p.sum(), n.sum()) == (np_, nn_)
        assert (lab[p == 1] >= 1).all() and (lab[n == 1] == 0).all()
    sd.manual_seed(3)
    a = sampler([many_pos])
    sd.manual_seed(3)
    b = sampler([many_pos])
    assert a[0][0].tolist() == b[0][0].tolist() and a[1][0].tolist() == b[1][0].tolist()
    with pytest.raises(ValueError, match="positive_fraction"):
        BalancedPositiveNegativeSampler(16, 1.5)
