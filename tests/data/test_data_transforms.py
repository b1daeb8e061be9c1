"""Transforms: exact pixel behaviour, seeding, batch vs single image, TTA."""
import numpy as np
import pytest

import shendu as sd
from shendu.data import transforms as T


def _imgs(n=6, c=3, h=5, w=7, dtype=np.float32):
    return np.arange(n * c * h * w).reshape(n, c, h, w).astype(dtype)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_flip_twice_is_identity_and_flip_matches_numpy():
    x = _imgs()
    once = T.RandomHorizontalFlip(p=1.0)(x)
    assert np.array_equal(once, x[..., ::-1])
    assert np.array_equal(T.RandomHorizontalFlip(p=1.0)(once), x)
    assert np.array_equal(T.RandomVerticalFlip(p=1.0)(x), x[..., ::-1, :])
    assert np.array_equal(T.RandomHorizontalFlip(p=0.0)(x), x)


def test_flip_is_per_image_and_seeded():
    x = _imgs(n=200, c=1, h=2, w=2)
    out = T.RandomHorizontalFlip(p=0.5)(x, generator=rng(1))
    flipped = np.array([np.array_equal(o, xi[..., ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped ^ kept) and 70 < flipped.sum() < 130
    assert np.array_equal(out, T.RandomHorizontalFlip(p=0.5)(x, generator=rng(1)))
    sd.manual_seed(3)
    a = T.RandomHorizontalFlip()(x)
    sd.manual_seed(3)
    assert np.array_equal(a, T.RandomHorizontalFlip()(x))


def test_random_crop_identity_and_window_contents():
    x = _imgs()
    assert np.array_equal(T.RandomCrop((5, 7), padding=0)(x, generator=rng()), x)
    out = T.RandomCrop(3)(x, generator=rng(2))
    assert out.shape == (6, 3, 3, 3)
    for o, xi in zip(out, x):  # every crop is some 3x3 window of its own image
        assert any(np.array_equal(o, xi[:, i:i + 3, j:j + 3])
                   for i in range(3) for j in range(5))


def test_random_crop_padding_fill_and_modes():
    x = np.ones((50, 1, 4, 4), np.float32)
    out = T.RandomCrop(4, padding=2, fill=-1)(x, generator=rng(0))
    assert set(np.unique(out)) == {-1.0, 1.0}
    # each crop shows the image shifted by at most 2 pixels: >= 2x2 ones survive
    assert (out == 1).sum(axis=(1, 2, 3)).min() >= 4
    edge = T.RandomCrop(4, padding=2, padding_mode="edge")(x, generator=rng(0))
    assert np.all(edge == 1)
    small = T.RandomCrop(6, pad_if_needed=True)(np.ones((2, 1, 4, 4)), generator=rng())
    assert small.shape == (2, 1, 6, 6)
    with pytest.raises(ValueError, match=r"crop size \(9, 9\) is larger"):
        T.RandomCrop(9)(x)
    with pytest.raises(ValueError, match="padding_mode"):
        T.RandomCrop(4, padding_mode="wrap")


def test_rotation_identities_and_rot90():
    square = _imgs(n=3, c=2, h=5, w=5)
    assert np.array_equal(T.rotate(square, 0), square)
    assert np.array_equal(T.rotate(square, 0, interpolation="bilinear"), square)
    assert np.array_equal(T.RandomRotation((0, 0))(square), square)
    for k in (1, 2, 3):
        ref = np.rot90(square, k, axes=(2, 3))
        assert np.array_equal(T.rotate(square, 90 * k), ref)
        assert np.allclose(T.rotate(square, 90 * k, interpolation="bilinear"), ref)
    even = _imgs(n=1, c=1, h=4, w=4, dtype=np.uint8)
    assert np.array_equal(T.rotate(even, 90, interpolation="bilinear"),
                          np.rot90(even, 1, axes=(2, 3)))
    single = square[0]  # (C, H, W) image
    assert np.array_equal(T.rotate(single, 90), np.rot90(single, 1, axes=(1, 2)))


def test_rotation_per_image_angles_and_fill():
    x = np.ones((2, 1, 9, 9), np.float32)
    out = T.rotate(x, [0, 45], fill=0)
    assert np.all(out[0] == 1)
    assert out[1, 0, 0, 0] == 0 and out[1, 0, 4, 4] == 1  # corners fall outside
    angles_used = T.RandomRotation(30)(np.ones((100, 1, 9, 9)), generator=rng(5))
    assert angles_used.shape == (100, 1, 9, 9)
    with pytest.raises(ValueError, match="interpolation"):
        T.RandomRotation(10, interpolation="cubic")


def test_to_tensor_layouts_and_scaling():
    hwc = np.full((4, 5, 3), 255, np.uint8)
    t = T.ToTensor()(hwc)
    assert isinstance(t, sd.Tensor) and t.shape == (3, 4, 5) and t.dtype == sd.float32
    assert float(t.numpy().max()) == 1.0
    chw = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    assert np.allclose(T.ToTensor()(chw).numpy(), chw / 255)
    batch_hwc = np.zeros((8, 32, 32, 3), np.uint8)
    assert T.ToTensor()(batch_hwc).shape == (8, 3, 32, 32)
    assert T.ToTensor()(np.zeros((28, 28), np.uint8)).shape == (1, 28, 28)
    assert T.ToTensor(layout="HWC")(np.zeros((3, 3, 3), np.uint8)).shape == (3, 3, 3)
    assert T.ToTensor()(np.array([[0.5]])).numpy().tolist() == [[[0.5]]]


def test_normalize_fit_on_train_reused_on_test():
    r = rng(0)
    train = r.normal([[[1.0]], [[5.0]], [[-2.0]]], [[[2.0]], [[0.5]], [[1.0]]],
                     size=(500, 3, 4, 4)).astype(np.float32)
    norm = T.Normalize.fit(train)
    assert np.allclose(norm.mean, train.mean(axis=(0, 2, 3)), atol=1e-5)
    assert np.allclose(norm.std, train.std(axis=(0, 2, 3)), rtol=1e-5)
    z = norm(train)
    assert np.allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    test = train[:10] + 1.0
    assert np.allclose(norm(test), (test - norm.mean[:, None, None]) / norm.std[:, None, None],
                       atol=1e-5)
    u8 = np.full((2, 1, 2, 2), 255, np.uint8)
    scaled = T.Normalize.fit(np.concatenate([u8, u8 * 0]), scale=1 / 255)
    assert np.allclose([scaled.mean[0], scaled.std[0]], [0.5, 0.5])
    assert np.allclose(T.Compose([T.ToTensor(), scaled])(u8).numpy(), 1.0)
    with pytest.raises(ValueError, match="has 3 channels"):
        T.Normalize([0, 0], [1, 1])(train)
    with pytest.raises(ValueError, match="non-zero"):
        T.Normalize([0], [0])


def test_standardize_features():
    r = rng(1)
    train = r.normal([3.0, -1.0, 10.0], [2.0, 0.1, 5.0], size=(1000, 3))
    s = T.Standardize().fit(train)
    z = s(train)
    assert np.allclose(z.mean(0), 0, atol=1e-9) and np.allclose(z.std(0), 1)
    assert np.allclose(s.inverse(z), train)
    const = T.Standardize().fit(np.ones((5, 2)))
    assert np.array_equal(const(np.ones((1, 2))), np.zeros((1, 2)))
    restored = T.Standardize()
    restored.load_state_dict(s.state_dict())
    assert np.allclose(restored(train[:3]), z[:3])
    tensor_out = s(sd.tensor(train[:2]))
    assert isinstance(tensor_out, sd.Tensor)
    with pytest.raises(RuntimeError, match="call fit"):
        T.Standardize()(train)


def test_color_jitter():
    x = rng(2).uniform(0.2, 0.8, size=(4, 3, 5, 5)).astype(np.float32)
    assert np.allclose(T.ColorJitter()(x), x)  # zero strength: identity
    bright = T.ColorJitter(brightness=(1.5, 1.5))(x)
    assert np.allclose(bright, np.clip(x * 1.5, 0, 1), atol=1e-6)
    flat = T.ColorJitter(contrast=(0, 0))(x)
    grey_mean = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean(axis=(1, 2))
    assert np.allclose(flat, grey_mean[:, None, None, None], atol=1e-6)
    gray = T.ColorJitter(saturation=(0, 0))(x)
    assert np.allclose(gray[:, 0], gray[:, 1], atol=1e-6)
    u8 = T.ColorJitter(brightness=0.5)(np.full((3, 3, 2, 2), 200, np.uint8), generator=rng())
    assert u8.dtype == np.uint8
    out = T.ColorJitter(0.4, 0.4, 0.4)(x, generator=rng(3))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert np.array_equal(out, T.ColorJitter(0.4, 0.4, 0.4)(x, generator=rng(3)))


def test_single_image_and_tensor_input():
    img = _imgs(n=1)[0]
    out = T.RandomCrop(3)(img, generator=rng())
    assert out.shape == (3, 3, 3)
    t = T.RandomHorizontalFlip(p=1.0)(sd.tensor(img))
    assert isinstance(t, sd.Tensor) and np.array_equal(t.numpy(), img[..., ::-1])
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2, 2, 2\)"):
        T.RandomCrop(1)(np.zeros((2, 2, 2, 2, 2)))


def test_multi_crop_positions_and_flip():
    x = np.arange(2 * 1 * 4 * 4).reshape(2, 1, 4, 4)
    five = T.multi_crop(x, 2)
    assert five.shape == (5, 2, 1, 2, 2)
    expected = [x[:, :, :2, :2], x[:, :, :2, 2:], x[:, :, 2:, :2], x[:, :, 2:, 2:],
                x[:, :, 1:3, 1:3]]
    for got, want in zip(five, expected):
        assert np.array_equal(got, want)
    ten = T.ten_crop(x, 2)
    assert ten.shape == (10, 2, 1, 2, 2)
    mirrored = x[..., ::-1]
    assert np.array_equal(ten[5], mirrored[:, :, :2, :2])
    assert np.array_equal(T.five_crop(x[0], 4)[4], x[0])
    with pytest.raises(ValueError, match="larger than the image"):
        T.multi_crop(x, 5)


def test_tta_predict_averages_views():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)

    def model(batch):  # mean pixel of each view
        return batch.mean(axis=(1, 2, 3)).reshape(-1, 1)

    avg = T.tta_predict(model, x, size=2, flip=False)
    crops = T.multi_crop(x, 2)
    assert np.allclose(avg.numpy()[:, 0], crops.mean(axis=(0, 2, 3, 4)))
    flips = T.tta_predict(model, x, flip=True, batch_size=1)
    assert np.allclose(flips.numpy()[:, 0], x.mean(axis=(1, 2, 3)))

    def logits(batch):
        return sd.tensor(np.stack([batch.numpy()[:, 0, 0, 0], -batch.numpy()[:, 0, 0, 0]], 1))

    probs = T.tta_predict(logits, x, size=2, flip=True, softmax=True)
    assert np.allclose(probs.numpy().sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("angle", [30.0, -17.5, 90.0, 135.0])
@pytest.mark.parametrize("order, interpolation", [(0, "nearest"), (1, "bilinear")])
def test_rotation_matches_scipy_ndimage(angle, order, interpolation):
    ndimage = pytest.importorskip("scipy.ndimage")
    img = rng(4).random((9, 12))  # non-square, so the corners fall outside
    ref = ndimage.rotate(img, angle, reshape=False, order=order, mode="grid-constant", cval=0.0)
    assert np.allclose(T.rotate(img, angle, interpolation=interpolation), ref, atol=1e-6)


def test_functional_flips_and_center_crop_match_numpy_slices():
    r = np.random.default_rng(0)
    batch = r.integers(0, 256, (3, 2, 5, 7), dtype=np.uint8)
    np.testing.assert_array_equal(T.hflip(batch), batch[..., ::-1])
    np.testing.assert_array_equal(T.vflip(batch), batch[..., ::-1, :])
    # torchvision's rounding: top = round((5 - 2) / 2) = 2, left = round((7 - 4) / 2) = 2
    np.testing.assert_array_equal(T.center_crop(batch, (2, 4)), batch[:, :, 2:4, 2:6])
    one = batch[0, 0]
    np.testing.assert_array_equal(T.center_crop(one, 3), one[1:4, 2:5])  # one (H, W) image
    t = T.hflip(sd.tensor(batch.astype(np.float32)))
    assert isinstance(t, sd.Tensor) and np.array_equal(t.numpy(), batch[..., ::-1])
    with pytest.raises(ValueError, match=r"center_crop: crop size \(6, 6\) is larger"):
        T.center_crop(batch, 6)
