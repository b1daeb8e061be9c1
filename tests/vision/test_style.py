"""Style transfer: the Gram, content, style and total-variation losses against NumPy
by hand and finite differences (float64); VGG-16 features load torchvision's keys (and
match torchvision's network when it is installed); the optimisation lowers the loss;
``shendu style`` writes an image."""
import numpy as np
import pytest

import shendu as sd
from shendu.vision.style import (
    VGG_LAYERS,
    RandomMultiScaleFeatures,
    StyleTransferLoss,
    VGGFeatures,
    content_loss,
    gram_matrix,
    load_image,
    style_loss,
    style_transfer,
    total_variation_loss,
)


def r(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def t64(a, grad=True):
    return sd.tensor(a, dtype=sd.float64, requires_grad=grad)


def test_losses_by_hand():
    f = r(2, 3, 4, 5)
    g = np.einsum("nchw,ndhw->ncd", f, f) / (3 * 4 * 5)
    np.testing.assert_allclose(gram_matrix(t64(f, False)).numpy(), g, rtol=1e-12)
    target = r(2, 3, 4, 5, seed=1)
    gt = np.einsum("nchw,ndhw->ncd", target, target) / 60
    assert style_loss(t64(f, False), t64(gt, False)).item() == pytest.approx(
        ((g - gt) ** 2).mean(), rel=1e-12)
    assert content_loss(t64(f, False), t64(target, False)).item() == pytest.approx(
        ((f - target) ** 2).mean(), rel=1e-12)
    img = r(1, 3, 5, 6)
    dy, dx = img[:, :, 1:] - img[:, :, :-1], img[:, :, :, 1:] - img[:, :, :, :-1]
    assert total_variation_loss(t64(img, False)).item() == pytest.approx(
        (dy ** 2).mean() + (dx ** 2).mean(), rel=1e-12)
    assert total_variation_loss(t64(img, False), p=1).item() == pytest.approx(
        np.abs(dy).mean() + np.abs(dx).mean(), rel=1e-12)
    with pytest.raises(ValueError, match="gram_matrix"):
        gram_matrix(sd.zeros(3, 4))
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        total_variation_loss(sd.zeros(1, 1, 2, 2), p=3)


def test_losses_gradcheck():
    f, target = t64(r(1, 2, 3, 3)), t64(r(1, 2, 3, 3, seed=1), False)
    gt = gram_matrix(target).detach()
    gc = sd.autograd.gradcheck
    assert gc(lambda f: gram_matrix(f).sum() + (gram_matrix(f) ** 2).sum(), (f,))
    assert gc(lambda f: style_loss(f, gt), (f,))
    assert gc(lambda f: content_loss(f, target), (f,))
    assert gc(lambda f: total_variation_loss(f), (f,))
    assert gc(lambda f: total_variation_loss(f, p=1), (f,))   # no tie at 0 in random data


def test_losses_against_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    f = r(1, 3, 4, 4)
    tf = torch.tensor(f, requires_grad=True)
    flat = tf.reshape(1, 3, 16)
    tg = flat @ flat.transpose(1, 2) / 48
    tv = ((tf[:, :, 1:] - tf[:, :, :-1]) ** 2).mean() + ((tf[..., 1:] - tf[..., :-1]) ** 2).mean()
    (tg.square().sum() + tv).backward()
    sf = t64(f)
    (gram_matrix(sf).square().sum() + total_variation_loss(sf)).backward()
    np.testing.assert_allclose(sf.grad.numpy(), tf.grad.numpy(), rtol=1e-10, atol=1e-12)


def vgg_state(seed=0):
    net = VGGFeatures()
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=v.shape).astype(np.float32) * 0.05
            for k, v in net.state_dict().items()}


def test_vgg_features_keys_and_loading(tmp_path):
    net = VGGFeatures()
    convs = sorted(int(k.split(".")[1]) for k in net.state_dict() if k.endswith("weight"))
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24]   # torchvision's indices
    assert VGG_LAYERS["relu4_2"] == 20
    pytest.importorskip("safetensors")
    from shendu.serialization import save_safetensors
    state = vgg_state()
    full = {k: sd.tensor(v) for k, v in state.items()}
    full["classifier.0.weight"] = sd.zeros(2, 2)         # the rest of vgg16 is ignored
    path = tmp_path / "vgg16.safetensors"
    save_safetensors(full, path)
    loaded = VGGFeatures(path, layers=["relu1_1", "relu5_1"])
    np.testing.assert_array_equal(loaded.features[24].weight.numpy(),
                                  state["features.24.weight"])
    assert not any(p.requires_grad for p in loaded.parameters())
    out = loaded(sd.rand(1, 3, 32, 32))
    assert sorted(out) == ["relu1_1", "relu5_1"] and out["relu5_1"].shape == (1, 512, 2, 2)
    del full["features.10.weight"]
    save_safetensors(full, tmp_path / "broken.safetensors")
    with pytest.raises(ValueError, match="lacks 1 VGG-16 feature weights"):
        VGGFeatures(tmp_path / "broken.safetensors")
    with pytest.raises(ValueError, match="unknown layers"):
        VGGFeatures(layers=["relu9_9"])


@pytest.mark.torchvision
def test_vgg_features_match_torchvision():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle")
    tvm = pytest.importorskip("torchvision.models",
                              reason="torchvision is not installed beside this torch")
    ref = tvm.vgg16(weights=None).features[:26].eval()
    state = vgg_state(1)
    ref.load_state_dict({k.split(".", 1)[1]: torch.tensor(v) for k, v in state.items()})
    ours = VGGFeatures(layers=["relu5_1"])
    ours.load_state_dict({k: sd.tensor(v) for k, v in state.items()})
    x = np.random.default_rng(2).uniform(size=(1, 3, 32, 32)).astype(np.float32)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    with torch.no_grad():
        want = ref(torch.tensor((x - mean) / std)).numpy()
    got = ours(sd.tensor(x))["relu5_1"].numpy()
    # 13 float32 conv layers: relative error grows ~ sqrt(terms) * eps per layer
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_random_multiscale_network():
    a, b = RandomMultiScaleFeatures(seed=3), RandomMultiScaleFeatures(seed=3)
    assert a.layers == ["s1k3", "s1k5", "s2k3", "s2k5", "s4k3", "s4k5"]
    w = a.convs[1].weight.numpy()
    np.testing.assert_array_equal(w, b.convs[1].weight.numpy())
    np.testing.assert_allclose(w.mean(axis=(1, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose((w ** 2).sum(axis=(1, 2, 3)), 1, rtol=1e-5)
    out = a(sd.rand(1, 3, 16, 16))
    assert out["s1k5"].shape == (1, 32, 16, 16) and out["s4k3"].shape == (1, 32, 4, 4)
    with pytest.raises(ValueError, match="odd"):
        RandomMultiScaleFeatures(sizes=(4,))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_style_transfer_lowers_the_loss(optimizer):
    sd.manual_seed(0)
    content = load_image("china.jpg", size=20)
    style = load_image("flower.jpg", size=16)
    net = RandomMultiScaleFeatures(channels=8, scales=(1, 2))
    lines = []
    out = style_transfer(content, style, net, steps=10, optimizer=optimizer, tv_weight=0.0,
                         log=lines.append)
    assert out.shape == content.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert lines and lines[0].startswith("evaluation")
    objective = StyleTransferLoss(net, content, style, tv_weight=0.0)
    with sd.no_grad():
        before = objective(content).item()
        assert objective.parts["content"] == 0    # the start is the content image
        assert objective(out).item() < 0.8 * before
    with pytest.raises(ValueError, match="optimizer"):
        style_transfer(content, style, net, optimizer="sgd")
    with pytest.raises(ValueError, match="one RGB image"):
        style_transfer(content[0], style, net)
    with pytest.raises(ValueError, match="no layers"):
        style_transfer(content, style, net, style_layers=["relu1_1"])


def test_load_image_sources(tmp_path):
    from PIL import Image
    img = load_image("flower.jpg", size=32)
    assert img.shape == (1, 3, 21, 32) and 0 <= float(img.min()) and float(img.max()) <= 1
    arr = (np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    np.testing.assert_allclose(load_image(tmp_path / "a.png").numpy()[0].transpose(1, 2, 0),
                               arr / 255, atol=1e-7)
    np.testing.assert_allclose(load_image(arr).numpy(), load_image(tmp_path / "a.png").numpy())
    with pytest.raises(FileNotFoundError, match="china.jpg"):
        load_image(tmp_path / "missing.png")


def test_cli_style_writes_an_image(tmp_path, capsys):
    from PIL import Image

    from shendu.cli import main
    out = tmp_path / "out.png"
    assert main(["style", "china.jpg", "flower.jpg", str(out), "--size", "24", "--steps",
                 "2", "--side-by-side"]) == 0
    text = capsys.readouterr().out
    assert "randomly initialised multi-scale network" in text and "wrote" in text
    w, h = Image.open(out).size
    assert h == 16 and w > 2 * 24
