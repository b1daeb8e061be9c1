"""Autoencoders (shapes, denoising only in training, the loss against the clean input),
greedy layer-wise pretraining (each layer learns, the encoders come back stacked),
Siamese distances, ``verify`` and N-way k-shot evaluation against hand-made cases."""
import numpy as np
import pytest

import shendu as sd
from shendu.models import (
    Autoencoder,
    Siamese,
    few_shot_accuracy,
    pretrain_layerwise,
    stacked_autoencoders,
    verify,
)


def test_dense_and_conv_autoencoder_shapes():
    ae = Autoencoder.dense([12, 6, 3])
    x = sd.rand(4, 12)
    assert ae.encode(x).shape == (4, 3) and ae(x).shape == (4, 12)
    assert float(ae(x).min()) >= 0 and float(ae(x).max()) <= 1  # sigmoid output
    conv = Autoencoder.conv([1, 4, 8], kernel_size=3)
    img = sd.rand(2, 1, 16, 16)
    assert conv.encode(img).shape == (2, 8, 4, 4) and conv(img).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="sizes"):
        Autoencoder.dense([5])
    with pytest.raises(ValueError, match="odd"):
        Autoencoder.conv([1, 2], kernel_size=4)
    with pytest.raises(ValueError, match="noise_type"):
        Autoencoder.dense([4, 2], noise_type="salt")
    with pytest.raises(ValueError, match="noise"):
        Autoencoder.dense([4, 2], noise=1.0, noise_type="mask")


def test_denoising_corrupts_in_training_only_and_loss_uses_clean_input():
    sd.manual_seed(0)
    ae = Autoencoder.dense([50, 10], noise=0.5, noise_type="mask")
    x = sd.rand(64, 50) + 0.1
    masked = ae.corrupt(x).numpy()
    frac = (masked == 0).mean()
    assert 0.4 < frac < 0.6 and np.all((masked == 0) | (masked == x.numpy()))
    ae.eval()
    with sd.no_grad():
        clean = ae.decode(ae.encode(x)).numpy()
        np.testing.assert_array_equal(ae(x).numpy(), clean)
        assert ae.loss(x).item() == pytest.approx(float(((clean - x.numpy()) ** 2).mean()),
                                                  rel=1e-5)
    g = Autoencoder.dense([50, 10], noise=0.1)
    g.train()
    diff = (g.corrupt(x) - x).numpy()
    assert 0.08 < diff.std() < 0.12


def test_pretrain_layerwise_learns_each_layer_and_stacks_encoders():
    rng = np.random.default_rng(0)
    # data on a 3-d subspace of 16-d space, in [0, 1]
    z = rng.uniform(size=(256, 3))
    x = (z @ rng.uniform(size=(3, 16)) / 3).astype(np.float32)
    sd.manual_seed(0)
    aes = stacked_autoencoders([16, 8, 4])
    before = [aes[0].loss(sd.as_tensor(x)).item()]
    lines = []
    enc = pretrain_layerwise(aes, x, epochs=30, lr=1e-2, batch_size=32, log=lines.append)
    assert len(lines) == 2 and lines[0].startswith("layer 1: reconstruction loss")
    after = aes[0].loss(sd.as_tensor(x)).item()
    assert after < 0.2 * before[0]
    assert [type(m).__name__ for m in enc] == ["Linear", "ReLU", "Linear", "ReLU"]
    assert enc[0] is aes[0].encoder[0] and enc[2] is aes[1].encoder[0]
    assert enc(sd.as_tensor(x)).shape == (256, 4)
    with pytest.raises(ValueError, match="at least one"):
        pretrain_layerwise([], x)


def test_siamese_distance_and_verify():
    emb = sd.nn.Sequential(sd.nn.Flatten(), sd.nn.Linear(4, 3))
    net = Siamese(emb, normalize=False)
    a, b = sd.randn(5, 1, 2, 2), sd.randn(5, 1, 2, 2)
    za, zb = emb(a).detach().numpy(), emb(b).detach().numpy()
    d = np.sqrt(((za - zb) ** 2).sum(1))
    np.testing.assert_allclose(net(a, b).detach().numpy(), d, rtol=1e-5, atol=1e-5)
    thr = float(np.median(d))
    np.testing.assert_array_equal(verify(net, a, b, thr).numpy(), d < thr)
    np.testing.assert_array_equal(net.verify(a, b, thr).numpy(), d < thr)
    unit = Siamese(emb)
    assert np.allclose(np.linalg.norm(unit.embed(a).detach().numpy(), axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="same number"):
        verify(net, a, b[:3], 0.5)


def test_few_shot_accuracy_on_hand_made_episodes():
    # class c lies at c along the first axis; a shifted copy of class 1 sits nearer 2
    y = np.repeat(np.arange(3), 4)
    x = np.zeros((12, 2))
    x[:, 0] = y
    acc, half = few_shot_accuracy(None, x, y, n_way=3, k_shot=1, queries=3, episodes=10)
    assert (acc, half) == (1.0, 0.0)
    # an embedding that maps everything to one point gets every query wrong but the first
    # prototype's (argmin picks index 0): accuracy exactly 1/n_way
    acc, _ = few_shot_accuracy(lambda t: t * 0, x, y, n_way=3, k_shot=2, queries=2,
                               episodes=5)
    assert acc == pytest.approx(1 / 3, abs=1e-4)  # reported to 4 decimals
    net = sd.nn.Linear(2, 2)
    with sd.no_grad():
        net.weight.copy_(sd.eye(2))
        net.bias.zero_()
    assert few_shot_accuracy(net, x, y, n_way=2, k_shot=1, queries=3, episodes=5,
                             rule="nearest")[0] == 1.0
    with pytest.raises(ValueError, match="need 4 classes"):
        few_shot_accuracy(None, x, y, n_way=4)
    with pytest.raises(ValueError, match="rule"):
        few_shot_accuracy(None, x, y, rule="knn")
