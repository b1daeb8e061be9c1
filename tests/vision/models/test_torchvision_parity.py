"""Every zoo model against torchvision: torchvision's random weights copied in unchanged
(same keys, same shapes) give the same outputs. Runs where torchvision is installed
(``/work/venv-tv``); elsewhere it shows as skipped with the reason."""
import numpy as np
import pytest
from _parity import compare_eval, copy_state, randomize_batch_norm

from shendu.vision import models as M

pytestmark = pytest.mark.torchvision
torchvision = pytest.importorskip("torchvision", reason="torchvision is the reference for "
                                  "the model zoo (run with /work/venv-tv/bin/python)")
torch = pytest.importorskip("torch")

# name -> input size: small where the architecture allows; VGG at 64 px and AlexNet at
# 160 px leave 2x2 / 4x4 maps, so the adaptive pools use PyTorch's overlapping bins.
SIZES = {"alexnet": 160, "googlenet": 64, "resnet18": 64, "resnet34": 64, "resnet50": 64,
         "resnet101": 64, "vgg11": 64, "vgg11_bn": 64, "vgg13": 64, "vgg13_bn": 64,
         "vgg16": 64, "vgg16_bn": 64, "vgg19": 64, "vgg19_bn": 64}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_torchvision_weights_load_unchanged_and_agree_in_float64(name):
    torch.manual_seed(0)
    kwargs = {"init_weights": True} if name == "googlenet" else {}
    ref = getattr(torchvision.models, name)(**kwargs)
    randomize_batch_norm(ref)
    mine = copy_state(ref, M.get_model(name))
    ref.double()
    mine.double()
    x = np.random.default_rng(0).standard_normal((2, 3, SIZES[name], SIZES[name]))
    compare_eval(ref, mine, x, rtol=1e-9)


def test_resnet18_float32_within_the_rounding_of_its_depth():
    torch.manual_seed(1)
    ref = torchvision.models.resnet18(num_classes=10)
    randomize_batch_norm(ref)
    mine = copy_state(ref, M.resnet18(num_classes=10))
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    # float32 rounding grows ~ sqrt(fan-in) per dot product (<= 3*3*512) and adds up over
    # the ~20 layers through which an error travels
    eps = np.finfo(np.float32).eps
    compare_eval(ref, mine, x, rtol=4 * 20 * np.sqrt(9 * 512) * eps)


def test_googlenet_training_mode_returns_the_same_auxiliary_outputs():
    torch.manual_seed(2)
    ref = torchvision.models.googlenet(num_classes=7, init_weights=True, dropout=0.0,
                                       dropout_aux=0.0).double()
    mine = copy_state(ref, M.googlenet(num_classes=7, dropout=0.0, dropout_aux=0.0)).double()
    x = np.random.default_rng(2).standard_normal((3, 3, 48, 48))
    want = ref.train()(torch.from_numpy(x))
    import shendu as sd
    got = mine.train()(sd.tensor(x))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=0,
                                   atol=1e-9 * float(w.detach().abs().max()))


def test_googlenet_transform_input_as_torchvision():
    torch.manual_seed(3)
    ref = torchvision.models.googlenet(num_classes=4, aux_logits=False, transform_input=True,
                                       init_weights=True).double()
    mine = copy_state(ref, M.googlenet(num_classes=4, aux_logits=False,
                                       transform_input=True)).double()
    compare_eval(ref, mine, np.random.default_rng(3).random((1, 3, 40, 40)), rtol=1e-9)
