"""sd.vision.utils: make_grid against a hand-built grid and torchvision, save_image writes
what torchvision writes, filter/feature-map grids, activation statistics, and Grad-CAM
against its closed form on a network whose gradients are known."""
import io

import numpy as np
import pytest

import shendu as sd
from shendu.vision.utils import (
    GradCAM,
    activation_stats,
    feature_maps,
    filter_grid,
    make_grid,
    overlay_heatmap,
    save_image,
    to_uint8_image,
)


def test_make_grid_by_hand():
    imgs = np.arange(3 * 1 * 2 * 2, dtype=np.float32).reshape(3, 1, 2, 2)
    g = make_grid(sd.tensor(imgs), nrow=2, padding=1, pad_value=-1).numpy()
    assert g.shape == (3, 7, 7)
    expect = np.full((7, 7), -1, np.float32)
    expect[1:3, 1:3], expect[1:3, 4:6], expect[4:6, 1:3] = imgs[0, 0], imgs[1, 0], imgs[2, 0]
    for c in range(3):   # grey images become three equal channels
        np.testing.assert_array_equal(g[c], expect)
    one = make_grid(sd.tensor(imgs[:1]))
    assert one.shape == (3, 2, 2)          # a single image is returned without padding
    n = make_grid(sd.tensor(imgs), normalize=True, scale_each=True, padding=0).numpy()
    assert n.min() == 0 and n.max() == 1
    r = make_grid(sd.tensor(imgs), normalize=True, value_range=(0.0, 4.0), padding=0).numpy()
    assert r.max() == 1 and r[0, 0, 1] == 0.25
    listed = make_grid([sd.tensor(imgs[0]), sd.tensor(imgs[1])], padding=0)
    assert listed.shape == (3, 2, 4)
    with pytest.raises(ValueError, match="expected"):
        make_grid(sd.zeros(1, 1, 1, 2, 2))
    with pytest.raises(TypeError, match="value_range"):
        make_grid(sd.zeros(2, 1, 2, 2), normalize=True, value_range=[0, 1])


@pytest.mark.torchvision
def test_make_grid_and_save_image_match_torchvision():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    tvu = pytest.importorskip("torchvision.utils",
                              reason="torchvision is not installed beside this torch")
    from PIL import Image
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3, 5, 6)).astype(np.float32)
    for kw in ({}, {"nrow": 3, "padding": 1, "pad_value": 0.3},
               {"normalize": True}, {"normalize": True, "scale_each": True},
               {"normalize": True, "value_range": (-1.0, 1.0), "nrow": 4}):
        ours = make_grid(sd.tensor(x), **kw).numpy()
        theirs = tvu.make_grid(torch.tensor(x), **kw).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    grey = rng.uniform(size=(5, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(make_grid(sd.tensor(grey)).numpy(),
                                  tvu.make_grid(torch.tensor(grey)).numpy())
    a, b = io.BytesIO(), io.BytesIO()
    save_image(sd.tensor(grey), a, format="png", nrow=3)
    tvu.save_image(torch.tensor(grey), b, format="png", nrow=3)
    np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_save_image_round_trip(tmp_path):
    from PIL import Image
    x = sd.tensor([[[0.0, 0.5], [1.0, 2.0]]]).repeat(3, 1, 1)
    path = tmp_path / "x.png"
    save_image(x, path)
    got = np.asarray(Image.open(path))
    assert got.shape == (2, 2, 3)
    assert got[..., 0].tolist() == [[0, 128], [255, 255]]    # x*255+0.5, clamped
    np.testing.assert_array_equal(to_uint8_image(x), got)


def lenet():
    sd.manual_seed(0)
    from shendu.vision.models import LeNet5
    return LeNet5()


def test_filter_grid_and_feature_maps():
    net = lenet()
    g = filter_grid(net.features[0], nrow=3, padding=1).numpy()
    assert g.shape == (3, 13, 19) and g.min() == 0 and g.max() == 1
    colour = filter_grid(sd.nn.Conv2d(3, 4, 3), nrow=4)
    assert colour.shape == (3, 5, 17)
    x = sd.randn(1, 1, 28, 28)
    maps = feature_maps(net, x, "features.1")
    with sd.no_grad():
        np.testing.assert_allclose(maps.numpy(), net.features[:2](x)[0].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="one image"):
        feature_maps(net, sd.randn(2, 1, 28, 28), "features.1")
    with pytest.raises(ValueError, match="not \\(1, C, H, W\\)"):
        feature_maps(net, x, "classifier.1")
    with pytest.raises(ValueError, match="conv"):
        filter_grid(sd.nn.Linear(2, 2))


def test_activation_stats_counts_dead_units():
    net = sd.nn.Sequential(sd.nn.Linear(3, 4), sd.nn.ReLU())
    with sd.no_grad():
        net[0].weight.copy_(sd.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 0, 0], [0, 1, 0]]))
        net[0].bias.copy_(sd.tensor([0.0, 0, -1, 0]))
    x = sd.tensor([[1.0, 2, 0], [3, 1, 0]])  # unit 1 is negative, unit 2 always -1: dead
    s = activation_stats(net, x)
    assert set(s) == {"0", "1"}
    assert s["1"]["dead"] == 0.5 and s["1"]["zeros"] == 0.5 and s["0"]["min"] == -3
    assert s["1"]["mean"] == pytest.approx(7 / 8)
    net.train()
    activation_stats(net, x, layers=["1"])
    assert net.training   # the mode is left as it was


class GAP(sd.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_gradcam_closed_form():
    # conv -> relu -> global average -> linear: d score_c / dA_k = W[c, k] / (H W)
    sd.manual_seed(1)
    net = sd.nn.Sequential(sd.nn.Conv2d(1, 4, 3, padding=1), sd.nn.ReLU(), GAP(),
                           sd.nn.Linear(4, 3))
    x = sd.randn(2, 1, 6, 6)
    cams = GradCAM(net, "1")(x, target=[2, 0]).numpy()
    with sd.no_grad():
        a = net[:2](x).numpy()
    w = net[3].weight.detach().numpy()
    for i, c in enumerate([2, 0]):
        cam = np.maximum((w[c][:, None, None] / 36 * a[i]).sum(0), 0)
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        np.testing.assert_allclose(cams[i], cam, rtol=1e-4, atol=1e-5)
    # default target: the predicted class; maps come back at the input's size
    pred = net(x).argmax(1).numpy()
    np.testing.assert_allclose(GradCAM(net, net[1])(x).numpy(),
                               GradCAM(net, "1")(x, target=pred).numpy())
    assert GradCAM(lenet(), "features.3")(sd.randn(3, 1, 28, 28)).shape == (3, 28, 28)
    with pytest.raises(ValueError, match="expected images"):
        GradCAM(net, "1")(sd.randn(6, 6))


def test_overlay_heatmap():
    out = overlay_heatmap(sd.zeros(1, 2, 2), sd.tensor([[0.0, 1.0], [0.5, 1.0]]), alpha=1.0)
    o = out.numpy()
    assert o.shape == (3, 2, 2)
    # the jet ramp: 0 is dark blue, 0.5 green, 1 dark red
    assert o[:, 0, 0].tolist() == [0.0, 0.0, 0.5]
    assert o[:, 1, 0].tolist() == [0.5, 1.0, 0.5]
    assert o[:, 0, 1].tolist() == [0.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="same size"):
        overlay_heatmap(sd.zeros(1, 2, 2), sd.zeros(3, 3))
