"""The model zoo without torchvision: layout details, docstring statistics against a
count, weights files, and the errors for bad weights and too-small inputs."""
import os
import re

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu import nn
from shendu.serialization import save_safetensors
from shendu.vision import models as M
from shendu.vision.models._utils import count_macs, model_stats
from shendu.vision.models.zoo import for_images

ALL = ["alexnet", "googlenet", "nin", "resnet101", "resnet18", "resnet34", "resnet50",
       "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

_STAT = re.compile(r"At (\d)x(\d+)x\d+ with (\d+) classes[^:]*: ([\d,]+)\s+parameters, "
                   r"([\d.]+) G multiply-adds")


_BUILT = {}


def built(name):
    """Each default-size model built once per module (VGG-16 is the only VGG built whole:
    the others share its classifier and differ only in the trunk)."""
    if name not in _BUILT:
        _BUILT[name] = M.get_model(name)
    return _BUILT[name]


def test_list_models_and_get_model():
    assert M.list_models() == ALL
    assert isinstance(M.get_model("nin", num_classes=4), M.NiN)
    with pytest.raises(ValueError, match="unknown model 'resnet9'.*resnet18"):
        M.get_model("resnet9")


def _params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", ALL)
def test_docstring_statistics_match_a_count(name):
    """Parameters and multiply-adds quoted in each docstring are what the model has."""
    from shendu.vision.models.vgg import CFGS, make_layers

    found = _STAT.search(" ".join(getattr(M, name).__doc__.split()))
    assert found, f"{name}: docstring lacks its statistics line"
    c, size, classes, params, gmacs = found.groups()
    if name.startswith("vgg") and name != "vgg16":
        vgg16 = built("vgg16")
        cfg = {"11": "A", "13": "B", "16": "D", "19": "E"}[name[3:5]]
        trunk = make_layers(CFGS[cfg], name.endswith("_bn"))
        assert _params(trunk) + _params(vgg16.classifier) == int(params.replace(",", ""))
        # multiply-adds: see test_vgg_multiply_adds_match_the_analytic_count
        return
    model = built(name)
    assert _params(model) == int(params.replace(",", ""))
    macs = count_macs(model, (int(c), int(size), int(size)))
    assert round(macs / 1e9, 2) == float(gmacs)


def test_vgg_multiply_adds_match_the_analytic_count():
    # the trunk's 3x3 convs at 224 px plus the three dense layers; batch norm adds none
    def analytic(cfg):
        size, c, total = 224, 3, 0
        for v in cfg:
            if v == "M":
                size //= 2
            else:
                total += size * size * v * c * 9
                c = v
        return total + 512 * 49 * 4096 + 4096 * 4096 + 4096 * 1000

    from shendu.vision.models.vgg import CFGS
    for name in ALL:
        if name.startswith("vgg"):
            cfg = {"11": "A", "13": "B", "16": "D", "19": "E"}[name[3:5]]
            doc = re.search(r"([\d.]+) G multiply-adds", getattr(M, name).__doc__).group(1)
            assert round(analytic(CFGS[cfg]) / 1e9, 2) == float(doc), name
    assert analytic(CFGS["D"]) == count_macs(built("vgg16"), (3, 224, 224))


def test_resnet18_small_input_statistics_in_docstring():
    doc = " ".join(M.resnet18.__doc__.split())
    params, gmacs = re.search(r"3x32x32: ([\d,]+) parameters, ([\d.]+) G", doc).groups()
    stats = model_stats(M.resnet18(num_classes=10, small_input=True), (3, 32, 32))
    assert stats["params"] == int(params.replace(",", ""))
    assert round(stats["macs"] / 1e9, 2) == float(gmacs)


def test_layout_details_that_are_easy_to_get_wrong():
    g = built("googlenet")
    assert g.conv1.bn.eps == 1e-3 and g.inception5b.branch4[1].bn.eps == 1e-3
    assert g.inception3a.branch3[1].conv.kernel_size == (3, 3)  # the "5x5" branch
    assert g.maxpool1.ceil_mode and g.inception3a.branch4[0].ceil_mode
    assert g.inception3a.branch1.conv.bias is None
    r50 = built("resnet50")
    assert r50.layer2[0].conv1.stride == (1, 1) and r50.layer2[0].conv2.stride == (2, 2)
    assert tuple(r50.layer2[0].downsample[0].weight.shape) == (512, 256, 1, 1)
    keys = built("vgg16").state_dict()
    assert "features.28.weight" in keys and "classifier.6.bias" in keys
    from shendu.vision.models.vgg import CFGS, make_layers
    assert "41.running_var" in make_layers(CFGS["D"], batch_norm=True).state_dict()
    keys = built("alexnet").state_dict()
    assert list(keys)[-2:] == ["classifier.6.weight", "classifier.6.bias"]
    assert "features.10.weight" in keys and "classifier.1.weight" in keys
    assert "7.4.bias" in built("nin").state_dict()  # d2l's Sequential of NiN blocks
    assert "layer4.1.bn2.num_batches_tracked" in built("resnet18").state_dict()


def test_resnet_small_input_stem_and_width():
    net = M.resnet18(num_classes=10, small_input=True, in_channels=1, width=8)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)
    assert net.fc.in_features == 64 and net(sd.zeros(2, 1, 28, 28)).shape == (2, 10)
    full = M.resnet18(small_input=True)
    assert sorted(full.state_dict()) == sorted(built("resnet18").state_dict())


def test_resnet_trains_every_parameter_and_zero_init_residual():
    net = M.resnet18(num_classes=3, small_input=True, width=4)
    F.cross_entropy(net(sd.randn(4, 3, 8, 8)), sd.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all()
               for p in net.parameters())
    z = M.resnet50(zero_init_residual=True, width=4)
    assert float(abs(z.layer1[0].bn3.weight).sum()) == 0.0
    assert float(z.layer1[0].bn2.weight.sum()) == 4.0


def test_googlenet_aux_outputs_in_training_only():
    g = M.googlenet(num_classes=5)
    out = g(sd.randn(2, 3, 32, 32))
    assert isinstance(out, M.GoogLeNetOutputs)
    assert [o.shape for o in out] == [(2, 5)] * 3
    assert g.eval()(sd.randn(1, 3, 32, 32)).shape == (1, 5)
    plain = M.googlenet(num_classes=5, aux_logits=False)
    assert plain.aux1 is None and plain(sd.randn(2, 3, 32, 32)).shape == (2, 5)
    assert not any(k.startswith("aux") for k in plain.state_dict())


@pytest.mark.parametrize("name,channels", [("alexnet", 3), ("vgg16", 3), ("googlenet", 3),
                                           ("nin", 1)])
def test_smallest_input_is_accepted_and_one_less_names_it(name, channels):
    model = built(name).eval()
    n = model.min_input_size
    assert model(sd.zeros(1, channels, n, n)).shape[0] == 1
    with pytest.raises(ValueError, match=f"at least {n}x{n}"):
        model(sd.zeros(1, channels, n - 1, n))
    if n > 28:
        with pytest.raises(ValueError, match=f"{name}: the images are 28x28.*least {n}x{n}"):
            for_images(name, (channels, 28, 28), 10)


@pytest.fixture(scope="module")
def small_resnet():
    sd.manual_seed(0)
    net = M.resnet18(num_classes=4, small_input=True, width=4)
    # non-trivial running statistics so eval mode differs from a fresh model
    net(sd.randn(8, 3, 8, 8))
    return net.eval()


def test_weights_path_shendu_and_safetensors(small_resnet, tmp_path):
    x = sd.randn(2, 3, 8, 8)
    want = small_resnet(x).detach().numpy()
    sd.save(small_resnet.state_dict(), tmp_path / "w.sd")
    save_safetensors(small_resnet.state_dict(), tmp_path / "w.safetensors")
    for path in ("w.sd", "w.safetensors"):
        loaded = M.resnet18(num_classes=4, small_input=True, width=4,
                            weights=tmp_path / path).eval()
        np.testing.assert_array_equal(loaded(x).detach().numpy(), want)


def test_weights_path_pth_goes_through_shendu_load(small_resnet, tmp_path):
    torch = pytest.importorskip("torch", reason="writes a .pth file with torch.save")
    path = os.fspath(tmp_path / "w.pth")
    torch.save({k: torch.from_numpy(np.array(v.numpy()))
                for k, v in small_resnet.state_dict().items()}, path)
    try:
        sd.load(path)
    except ValueError as exc:  # no PyTorch-checkpoint reader in this build: same message
        with pytest.raises(ValueError, match=re.escape(str(exc)[:40])):
            M.resnet18(num_classes=4, small_input=True, width=4, weights=path)
        return
    loaded = M.resnet18(num_classes=4, small_input=True, width=4, weights=path).eval()
    x = sd.randn(2, 3, 8, 8)
    np.testing.assert_array_equal(loaded(x).detach().numpy(), small_resnet(x).detach().numpy())


def test_weights_that_do_not_fit_list_every_problem_at_once(small_resnet, tmp_path):
    state = dict(small_resnet.state_dict())
    del state["layer1.0.bn1.running_mean"]
    state["head.weight"] = state.pop("fc.weight")
    state["conv1.weight"] = np.zeros((4, 3, 7, 7), np.float32)
    sd.save(state, tmp_path / "bad.sd")
    with pytest.raises(RuntimeError) as info:
        M.resnet18(num_classes=4, small_input=True, width=4, weights=tmp_path / "bad.sd")
    msg = str(info.value)
    assert 'Missing key(s) in state_dict: "layer1.0.bn1.running_mean", "fc.weight"' in msg
    assert 'Unexpected key(s) in state_dict: "head.weight"' in msg
    assert "size mismatch for conv1.weight" in msg and "(4, 3, 7, 7)" in msg
    with pytest.raises(ValueError, match="not a state dict"):
        sd.save([1, 2], tmp_path / "list.sd")
        M.resnet18(weights=tmp_path / "list.sd")


def test_training_checkpoint_loads_as_weights(tmp_path):
    from shendu.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", "resnet18", "--width", "4", "--dataset", "digits",
                 "--limit", "120", "--epochs", "1", "--batch-size", "40", "--no-progress",
                 "--out", str(out)]) == 0
    net = M.resnet18(num_classes=10, small_input=True, in_channels=1, width=4,
                     weights=out / "checkpoint.sd")
    assert net.eval()(sd.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_for_images_picks_small_input_below_64_px():
    assert isinstance(for_images("resnet34", (1, 28, 28), 10, width=4).maxpool, nn.Identity)
    assert isinstance(for_images("resnet18", (3, 96, 96), 10, width=4).maxpool, nn.MaxPool2d)
    assert for_images("googlenet", (1, 32, 32), 10).conv1.conv.in_channels == 1


def test_train_command_resizes_images_for_models_built_for_large_ones(tmp_path):
    from shendu.cli import main
    from shendu.train.recipe import build_model, resolve_config

    with pytest.raises(ValueError, match=r"--resize 32"):
        build_model(resolve_config({"model": "vgg11"}), (1, 28, 28), 10)
    out = tmp_path / "g"
    assert main(["train", "--model", "googlenet", "--dataset", "digits", "--resize", "16",
                 "--limit", "60", "--epochs", "1", "--batch-size", "30", "--no-progress",
                 "--out", str(out)]) == 0
    import json
    res = json.loads((out / "metrics.json").read_text())
    assert res["config"]["resize"] == 16 and 0 <= res["test"]["acc"] <= 1
    net = M.googlenet(num_classes=10, aux_logits=False, in_channels=1,
                      weights=out / "checkpoint.sd")
    assert net.eval()(sd.zeros(1, 1, 16, 16)).shape == (1, 10)
