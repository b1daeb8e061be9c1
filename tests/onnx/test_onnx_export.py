"""sd.onnx.export: the file passes onnx.checker and onnxruntime reproduces shendu.

Tolerance: float32, rtol 1e-4 as the issue asks, plus an absolute term of 1e-5 times the
output's largest magnitude: onnxruntime sums products in another order (and with other
kernels), so an output near zero carries the rounding of the larger terms it sums.
"""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime checks the exports")

import shendu as sd  # noqa: E402
from shendu import nn  # noqa: E402


def _run_ort(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _shendu(model, *xs):
    with sd.no_grad():
        out = model(*xs)
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


def _close(got, want):
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


def check_export(model, xs, tmp_path, names=None, **kwargs):
    xs = xs if isinstance(xs, tuple) else (xs,)
    names = names or [f"in{i}" for i in range(len(xs))]
    path = tmp_path / "model.onnx"
    model.eval()
    sd.onnx.export(model, xs, path, input_names=names, **kwargs)
    onnx.checker.check_model(str(path))
    got = _run_ort(path, {n: x.numpy() for n, x in zip(names, xs)})
    want = _shendu(model, *xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        _close(g, w)
    return path


def test_mlp(tmp_path):
    sd.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.GELU(),
                        nn.Linear(16, 3), nn.LogSoftmax(dim=1))
    check_export(net, sd.randn(4, 6), tmp_path)


def test_lenet5(tmp_path):
    sd.manual_seed(0)
    check_export(sd.vision.models.LeNet5(), sd.randn(2, 1, 28, 28), tmp_path)


def test_cnn_with_batchnorm_and_dropout_in_eval(tmp_path):
    sd.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),
        nn.Dropout(0.5), nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(8 * 1 * 1, 5))
    for bn in (net[1], net[5]):  # running statistics away from their initial 0 and 1
        bn.running_mean.copy_(sd.randn(8) * 0.3)
        bn.running_var.copy_(sd.rand(8) + 0.5)
    net.train()
    check_export(net, sd.randn(3, 3, 8, 8), tmp_path)
    assert not net.training  # exported (and left) in eval mode as check_export asked


class _LanguageModel(nn.Module):
    def __init__(self, vocab=30, embed=8, hidden=12):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        y, _ = self.lstm(self.embed(tokens))
        return self.out(y)


def test_embedding_lstm_linear_language_model(tmp_path):
    sd.manual_seed(0)
    tokens = sd.randint(0, 30, (3, 7))
    path = check_export(_LanguageModel(), tokens, tmp_path)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Gather", "LSTM"} <= ops


class _GRUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(5, 6, num_layers=2, bidirectional=True)

    def forward(self, x):
        y, h = self.gru(x)
        return y, h


def test_gru_bidirectional_two_layers(tmp_path):
    sd.manual_seed(0)
    check_export(_GRUNet(), sd.randn(7, 3, 5), tmp_path)


def test_transformer_encoder_layer(tmp_path):
    sd.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
    check_export(layer, sd.randn(2, 5, 16), tmp_path)


class _SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(12, 3)

    def forward(self, q, kv):
        return self.attn(q, kv, kv)


def test_multihead_attention_with_weights(tmp_path):
    sd.manual_seed(0)
    check_export(_SelfAttention(), (sd.randn(4, 2, 12), sd.randn(6, 2, 12)), tmp_path,
                 names=["q", "kv"])


def test_dynamic_batch_runs_in_onnxruntime(tmp_path):
    sd.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    path = tmp_path / "dyn.onnx"
    net.eval()
    sd.onnx.export(net, sd.randn(2, 1, 6, 6), path, input_names=["x"], output_names=["y"],
                   dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in (1, 5):
        x = sd.randn(batch, 1, 6, 6)
        (got,) = _run_ort(path, {"x": x.numpy()})
        _close(got, _shendu(net, x)[0])


def test_dynamic_batch_language_model(tmp_path):
    sd.manual_seed(0)
    lm = _LanguageModel()
    path = tmp_path / "lm.onnx"
    lm.eval()
    sd.onnx.export(lm, sd.randint(0, 30, (2, 5)), path, input_names=["tokens"],
                   dynamic_axes={"tokens": [0]})
    tokens = sd.randint(0, 30, (4, 5))
    (got,) = _run_ort(path, {"tokens": tokens.numpy()})
    _close(got, _shendu(lm, tokens)[0])


@pytest.mark.parametrize("hw,out", [((1, 1), (7, 7)), ((5, 7), (3, 6)), ((8, 8), (2, 4))])
def test_adaptive_pooling_with_uneven_windows(hw, out, tmp_path):
    sd.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.AdaptiveAvgPool2d(out))
    check_export(net, sd.randn(2, 2, *hw), tmp_path)
    check_export(nn.AdaptiveMaxPool2d(out), sd.randn(2, 2, *hw), tmp_path)


def test_nearest_upsampling_by_whole_factors(tmp_path):
    """An FCN/U-Net decoder's ``F.interpolate(mode='nearest')``: one primitive in shendu,
    exported as the broadcast it is; any batch runs, and the file imports back."""
    sd.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.Upsample(scale_factor=2),
                        nn.Conv2d(3, 2, 3, padding=1), nn.Upsample(scale_factor=(3, 2)))
    check_export(net, sd.randn(2, 2, 3, 4), tmp_path)
    path = tmp_path / "up.onnx"
    sd.onnx.export(net, sd.randn(2, 2, 3, 4), path, input_names=["x"],
                   dynamic_axes={"x": [0]})
    x = sd.randn(5, 2, 3, 4)
    (got,) = _run_ort(path, {"x": x.numpy()})
    _close(got, _shendu(net, x)[0])
    _close(_shendu(sd.onnx.import_model(path), x)[0], _shendu(net, x)[0])


def test_export_then_import_round_trip(tmp_path):
    sd.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    path = tmp_path / "rt.onnx"
    sd.onnx.export(net, sd.randn(1, 2, 6, 6), str(path), input_names=["x"],
                   dynamic_axes={"x": [0]})
    back = sd.onnx.import_model(path)
    x = sd.randn(3, 2, 6, 6)
    np.testing.assert_allclose(_shendu(back, x)[0], _shendu(net, x)[0], rtol=1e-5, atol=1e-6)
    assert set(back.state_dict()) == set(net.state_dict())  # same names as the model's
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # atomic write


def test_untranslatable_ops_are_listed_with_where_they_ran(tmp_path):
    def fn(x):
        return sd.cumsum(x, 0) + sd.sort(x, 0)[0]

    with pytest.raises(NotImplementedError, match=r"cumsum .*test_onnx_export.py"):
        sd.onnx.export(fn, sd.randn(3), tmp_path / "x.onnx")


# ------------------------------------------------------------------ the vision model zoo
def _zoo_names():
    from shendu.vision import models

    return models.list_models() if hasattr(models, "list_models") else []


# Kept out of the default run for time, not for failing (all pass with
# SHENDU_ONNX_FULL_ZOO=1): AlexNet and the VGGs (57-144 M parameters, by far the slowest
# to build, export and run) use only ops the ResNets, GoogLeNet, NiN and
# test_adaptive_pooling_with_uneven_windows check (conv, batch norm, ReLU, max pool,
# adaptive average pool to 6x6/7x7, linear, dropout); ResNet-101 repeats ResNet-50's
# bottleneck blocks.
_SLOW_REPEATS = {"alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
                 "vgg16_bn", "vgg19_bn", "resnet101"}


@pytest.mark.parametrize("name", _zoo_names())
def test_vision_zoo_model(name, tmp_path):
    if name in _SLOW_REPEATS and not os.environ.get("SHENDU_ONNX_FULL_ZOO"):
        pytest.skip("its ops are checked by other zoo models; SHENDU_ONNX_FULL_ZOO=1 runs it")
    from shendu.vision import models

    sd.manual_seed(0)
    model = models.get_model(name, num_classes=10)
    size = max(getattr(model, "min_input_size", 32), 32)
    in_ch = getattr(model, "in_channels", None) or (1 if name == "nin" else 3)
    x = sd.randn(2, in_ch, size, size)
    check_export(model, x, tmp_path)
