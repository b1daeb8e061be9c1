"""Multi-scale inference: the average of the per-scale class probabilities, checked against
NumPy (PyTorch's bilinear index rule, a 1x1 convolution as the model), the mirror pass,
the rounding of the resized sides, and its errors."""
import numpy as np
import pytest
from references import interpolate_ref

import shendu as sd
from shendu import nn
from shendu.vision.segmentation import predict_multiscale

rng = np.random.default_rng(2612)


def softmax(z, axis):
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def pointwise_model(cin, classes):
    conv = nn.Conv2d(cin, classes, 1).double()
    w = conv.weight.detach().numpy()[:, :, 0, 0]
    b = conv.bias.detach().numpy()
    return conv, lambda x: np.einsum("oc,nchw->nohw", w, x) + b[None, :, None, None]


def test_two_scales_average_the_probabilities_of_each():
    x = rng.standard_normal((2, 3, 6, 8))
    model, reference = pointwise_model(3, 4)
    up = interpolate_ref(x, size=(12, 16), mode="bilinear", align_corners=False)
    scores_back = interpolate_ref(reference(up), size=(6, 8), mode="bilinear",
                                  align_corners=False)
    expect = (softmax(reference(x), 1) + softmax(scores_back, 1)) / 2
    got = predict_multiscale(model, sd.tensor(x), scales=(1.0, 2.0))
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-12, atol=1e-12)


def test_one_scale_is_the_softmax_of_the_model():
    model = nn.Conv2d(2, 3, 3, padding=1).double()
    x = sd.tensor(rng.standard_normal((1, 2, 5, 5)))
    with sd.no_grad():
        expect = softmax(model(x).numpy(), 1)
    np.testing.assert_allclose(predict_multiscale(model, x).numpy(), expect, rtol=1e-12)


def test_the_mirror_pass_is_mirrored_back():
    model = nn.Conv2d(1, 3, 3, padding=1).double()  # not symmetric: the flips matter
    x = rng.standard_normal((2, 1, 4, 7))
    with sd.no_grad():
        plain = softmax(model(sd.tensor(x)).numpy(), 1)
        mirrored = softmax(model(sd.tensor(x[..., ::-1].copy())).numpy(), 1)[..., ::-1]
    got = predict_multiscale(model, sd.tensor(x), flip=True)
    np.testing.assert_allclose(got.numpy(), (plain + mirrored) / 2, rtol=1e-12, atol=1e-12)
    assert not np.allclose(plain, mirrored)


class _Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[2:]))
        return sd.zeros(x.shape[0], 2, *x.shape[2:])


def test_resized_sides_are_rounded_to_the_multiple():
    model = _Recorder()
    out = predict_multiscale(model, sd.zeros(1, 1, 40, 24), scales=(0.5, 0.75, 1.3),
                             size_multiple=16)
    assert model.sizes == [(16, 16), (32, 16), (48, 32)]
    np.testing.assert_allclose(out.numpy(), 0.5)  # equal scores: each class 1/2
    assert out.shape == (1, 2, 40, 24)


@pytest.mark.parametrize("kwargs, images, message", [
    ({}, sd.zeros(1, 4, 4), r"expected \(N, C, H, W\) images, got shape \(1, 4, 4\)"),
    ({"scales": (1.0, 0.0)}, sd.zeros(1, 1, 4, 4), r"scales must be positive.*\(1.0, 0.0\)"),
    ({"scales": ()}, sd.zeros(1, 1, 4, 4), "scales must be positive"),
    ({"size_multiple": 0}, sd.zeros(1, 1, 4, 4), "size_multiple must be >= 1, got 0"),
])
def test_bad_arguments_name_the_function_and_the_value(kwargs, images, message):
    with pytest.raises(ValueError, match="predict_multiscale: " + message):
        predict_multiscale(_Recorder(), images, **kwargs)
