"""examples/segment_canvas.py: its Dice loss against a NumPy reference, and one tiny run end
to end (results file with the command, commit and machine)."""
import importlib.util
import json
import pathlib

import matplotlib.image as plt_image
import numpy as np
import pytest

import shendu as sd

_PATH = pathlib.Path(__file__).resolve().parents[3] / "examples" / "segment_canvas.py"
_spec = importlib.util.spec_from_file_location("segment_canvas", _PATH)
segment_canvas = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(segment_canvas)


def ref_dice_loss(logits, target):
    e = np.exp(logits - logits.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    scores = []
    for c in range(logits.shape[1]):
        y = (target == c).astype(np.float64)
        if y.sum() == 0:
            continue  # classes absent from the target are left out
        scores.append((2 * (p[:, c] * y).sum() + 1) / (p[:, c].sum() + y.sum() + 1))
    return 1 - np.mean(scores)


def test_dice_loss_matches_the_reference_and_its_gradient():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 3, 5))
    target = rng.integers(0, 3, (2, 3, 5))  # class 3 absent
    x = sd.tensor(logits, requires_grad=True)
    loss = segment_canvas.dice_loss(x, sd.tensor(target))
    np.testing.assert_allclose(float(loss), ref_dice_loss(logits, target), rtol=1e-10)
    loss.backward()
    eps, k = 1e-6, (1, 2, 0, 3)
    up, down = logits.copy(), logits.copy()
    up[k] += eps
    down[k] -= eps
    fd = (ref_dice_loss(up, target) - ref_dice_loss(down, target)) / (2 * eps)
    np.testing.assert_allclose(x.grad.numpy()[k], fd, rtol=1e-5, atol=1e-9)


def test_dice_loss_is_near_zero_for_a_confident_right_answer():
    target = np.array([[[0, 1], [2, 2]]])
    logits = 50.0 * np.eye(3)[target].transpose(0, 3, 1, 2)
    assert float(segment_canvas.dice_loss(sd.tensor(logits), sd.tensor(target))) < 1e-6


def test_error_breakdown_from_a_hand_counted_confusion_matrix():
    # rows: truth (background, class 1, class 2); columns: prediction
    confmat = np.array([[90, 3, 1],
                        [2, 10, 4],
                        [1, 0, 9]])
    e = segment_canvas.error_breakdown(confmat)
    # 26 object pixels: 3 called background, 4 given the other class; 4 background spilled
    assert e == pytest.approx({"missed": 3 / 26, "spilled": 4 / 26, "confused": 4 / 26,
                               "object_iou": 23 / 30})


def test_segment_canvas_runs_end_to_end(tmp_path):
    out = tmp_path / "seg.json"
    segment_canvas.main(["--sources", "digits", "--canvas-size", "32", "--train-images", "4",
                         "--test-images", "2", "--epochs", "1", "--batch-size", "2",
                         "--widths", "4,8", "--deep-scores", "--out", str(out),
                         "--save", str(tmp_path / "unet.sd")])
    result = json.loads(out.read_text())
    assert result["steps"] == 2 and 0 <= result["test_miou"] <= 1
    assert set(result["pixel_errors"]) == {"missed", "spilled", "confused", "object_iou"}
    objects = result["objects"]
    assert objects["digits"]["count"] >= 2 and 0 <= objects["digits"]["classified_right"] <= 1
    assert objects["digits"]["count"] == sum(objects["digits"][b]["count"] for b in (
        "box_apart", "box_covered_up_to_0.2", "box_covered_over_0.2"))
    assert 0 <= objects["one_class_per_true_object"]["test_miou"] <= 1
    weights = sd.load(tmp_path / "unet.sd")
    assert "coarse_heads.0.weight" in weights and "head.weight" in weights
    assert result["command"].startswith("python examples/segment_canvas.py")
    assert result["commit"] and result["machine"]["cpu_count"] >= 1
    # the saved weights evaluate again, without training, with the region vote as well
    again = tmp_path / "again.json"
    segment_canvas.main(["--sources", "digits", "--canvas-size", "32", "--train-images", "4",
                         "--test-images", "2", "--epochs", "0", "--widths", "4,8",
                         "--deep-scores", "--out", str(again), "--load",
                         str(tmp_path / "unet.sd"), "--vote", "0.5", "--scales", "1",
                         "--picture", str(tmp_path / "masks.png")])
    second = json.loads(again.read_text())
    assert second["steps"] == 0 and second["test_miou"] == pytest.approx(result["test_miou"])
    assert 0 <= second["vote"]["test_miou"] <= 1
    # the confusion matrix counts every test pixel once; one scale predicts as the model
    assert np.sum(second["confusion_matrix"]) == 2 * 32 * 32
    assert second["multiscale"]["confusion_matrix"] == second["confusion_matrix"]
    assert second["multiscale"]["scales"] == [1.0] and not second["multiscale"]["flip"]
    # the picture: gray canvases with the true masks drawn in color
    picture = plt_image.imread(tmp_path / "masks.png")[..., :3]
    assert picture.shape[0] > 100 and picture.shape[1] > 100
    assert np.mean(np.ptp(picture, axis=-1) > 0.2) > 0.01   # colored pixels, not only gray


def test_flip_needs_scales(capsys):
    with pytest.raises(SystemExit):
        segment_canvas.main(["--flip", "--out", "unused.json"])
    assert "--flip needs --scales" in capsys.readouterr().err


def _components_by_search(mask):
    """Reference labelling: a breadth-first search from each unlabelled pixel in flat
    order, so each component's label is its smallest flat index."""
    h, w = mask.shape
    lab = np.full((h, w), -1)
    for start in range(h * w):
        y, x = divmod(start, w)
        if not mask[y, x] or lab[y, x] >= 0:
            continue
        lab[y, x], todo = start, [(y, x)]
        while todo:
            cy, cx = todo.pop()
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and lab[ny, nx] < 0:
                    lab[ny, nx] = start
                    todo.append((ny, nx))
    return lab


def test_connected_components_match_a_search():
    rng = np.random.default_rng(0)
    spiral = np.zeros((9, 9), bool)   # one long winding component: many passes without jumps
    spiral[0, :] = spiral[:, 8] = spiral[8, :] = spiral[2:, 0] = True
    spiral[2, :7] = spiral[2:7, 6] = spiral[6, 2:7] = spiral[4:7, 2] = True
    for mask in [spiral, np.zeros((3, 4), bool), np.ones((5, 2), bool),
                 *(rng.random((12, 15)) < p for p in (0.3, 0.5, 0.6))]:
        np.testing.assert_array_equal(segment_canvas.connected_components(mask),
                                      _components_by_search(mask))


def test_component_vote_relabels_a_region_and_spares_touching_objects():
    c, h, w = 4, 6, 8
    logits = np.full((c, h, w), -5.0)
    logits[0] = 5.0                      # background everywhere ...
    logits[:, 1:4, 1:4] = -5.0           # ... but a 3x3 object, mostly class 2
    logits[2, 1:4, 1:4] = 3.0
    logits[3, 1, 1] = 4.0                # one pixel wrongly class 3
    logits[:, 1:3, 5:7] = -5.0           # a 2x2 region split half class 1, half class 3
    logits[1, 1:3, 5] = 2.0
    logits[3, 1:3, 6] = 2.0
    plain = logits.argmax(0)
    voted = segment_canvas.component_vote(logits, 0.6)
    assert plain[1, 1] == 3 and voted[1, 1] == 2          # the odd pixel joins its region
    assert (voted[1:4, 1:4] == 2).all()
    np.testing.assert_array_equal(voted[1:3, 5:7], plain[1:3, 5:7])   # 50/50: left alone
    assert (voted[plain == 0] == 0).all()                  # background is never touched


def test_object_votes_give_each_true_object_its_most_probable_class():
    c, h, w = 4, 5, 8
    logits = np.zeros((c, h, w))
    logits[0] = 4.0                           # background wins everywhere ...
    first = np.zeros((h, w), bool)
    first[1:4, 0:3] = True                    # a true object of class 2 (9 pixels)
    logits[:, first] = 0.0
    logits[2, first] = 3.0
    logits[1, 1, 0:3] = 6.0                   # its top row says class 1, confidently
    second = np.zeros((h, w), bool)
    second[1:3, 5:7] = True                   # class 3, all four pixels right
    logits[:, second] = 0.0
    logits[3, second] = 2.0
    target = {"masks": np.stack([first, second, np.zeros((h, w), bool)]).astype(np.uint8),
              "labels": np.array([2, 3, 1]),  # the third is hidden entirely: skipped
              "boxes": np.array([[0, 1, 3, 4], [5, 1, 7, 3], [2, 0, 6, 2]], np.float32)}
    pred = logits.argmax(0)
    p = np.exp(logits - logits.max(0))
    p /= p.sum(0)
    want_first = 1 + int(p[1:, first].sum(1).argmax())   # by hand: 3 rows of class 2
    assert want_first == 2 and pred[1, 0] == 1
    votes, voted_map = segment_canvas.object_votes(logits, target)
    # the hidden third box covers 1 of the first box's 9 pixels and 1 of the second's 4
    assert votes == [(2, 2, pytest.approx(1 / 9)), (3, 3, pytest.approx(1 / 4))]
    want_map = pred.copy()
    want_map[first] = 2
    np.testing.assert_array_equal(voted_map, want_map)
    # an object pixel the argmax gives to the background stays background
    logits[0, 3, 0] = 9.0
    _, voted_map = segment_canvas.object_votes(logits, target)
    assert voted_map[3, 0] == 0 and voted_map[2, 0] == 2


def test_box_covered_counts_the_largest_share_under_another_box():
    boxes = np.array([[0, 0, 4, 4],      # 16 pixels: 4 under the second, 2 under the third
                      [2, 2, 6, 6],      # 16: 4 under the first
                      [3, 0, 5, 1],      # 2: 1 under the first
                      [10, 10, 12, 12]], np.float64)   # apart
    np.testing.assert_allclose(segment_canvas.box_covered(boxes), [4 / 16, 4 / 16, 1 / 2, 0])
    assert segment_canvas.box_covered(np.zeros((0, 4))).shape == (0,)


def test_object_accuracy_per_source_and_by_cover():
    objects = [(2, 2, 0.0), (3, 5, 0.0), (4, 4, 0.1),              # clothes: 2 of 3 right
               (12, 12, 0.0), (15, 17, 0.5), (20, 20, 0.2)]        # digits: 2 of 3 right
    acc = segment_canvas.object_accuracy(objects, ["fashion-mnist", "digits"])
    assert acc["fashion-mnist"]["count"] == 3
    assert acc["fashion-mnist"]["classified_right"] == pytest.approx(2 / 3)
    assert acc["fashion-mnist"]["box_apart"] == {"count": 2, "classified_right": 0.5}
    assert acc["fashion-mnist"]["box_covered_over_0.2"] == {"count": 0,
                                                            "classified_right": None}
    assert acc["digits"]["box_covered_up_to_0.2"] == {"count": 1, "classified_right": 1.0}
    assert acc["digits"]["box_covered_over_0.2"] == {"count": 1, "classified_right": 0.0}


def test_pretraining_trains_the_encoder_on_single_objects():
    from shendu.vision.datasets import CanvasSegmentation
    from shendu.vision.segmentation import UNet

    seg = CanvasSegmentation("train", 4, canvas_size=64, sources=("digits",))
    objects = segment_canvas.object_canvases(seg, "train", 20)
    assert objects.canvas_size == 32 and objects.scale == seg.scale == (10, 28)
    assert all(len(objects.generate(i)[1]["labels"]) == 1 for i in range(20))
    sd.manual_seed(0)
    unet = UNet(1, seg.num_classes, widths=(4, 8, 8, 8, 16))
    before = {k: np.asarray(v).copy() for k, v in unet.state_dict().items()}
    report = segment_canvas.pretrain_encoder(unet, seg, minutes=0.01, batch_size=8)
    assert report["steps"] >= 1 and 0 <= report["val_accuracy"] <= 1
    after = unet.state_dict()
    moved = {k for k in before if not np.array_equal(before[k], np.asarray(after[k]))}
    # the encoder learnt (weights and batch-norm statistics); the decoder was not used
    assert "down.0.0.weight" in moved and "down.4.3.weight" in moved
    assert not any(k.startswith(("up.", "merge.", "head")) for k in moved)
    assert unet.training


def test_running_stats_kept_leaves_batch_norm_statistics_alone():
    bn = sd.nn.BatchNorm2d(3)
    model = sd.nn.Sequential(sd.nn.Conv2d(1, 3, 3), bn)
    x = sd.randn(4, 1, 8, 8) * 5 + 2
    with segment_canvas.running_stats_kept(model):
        model(x)
    assert np.array_equal(np.asarray(bn.running_mean), np.zeros(3))
    assert np.array_equal(np.asarray(bn.running_var), np.ones(3))
    assert bn.momentum == 0.1
    model(x)   # outside, the statistics move again
    assert not np.array_equal(np.asarray(bn.running_mean), np.zeros(3))


def test_auxiliary_classification_trains_the_encoder_beside_the_masks(tmp_path):
    out = tmp_path / "aux.json"
    args = ["--sources", "digits", "--canvas-size", "32", "--train-images", "2",
            "--test-images", "2", "--epochs", "1", "--batch-size", "2", "--widths", "4,8",
            "--deep-scores", "--out", str(out)]
    segment_canvas.main(args + ["--aux-classify", "0.5", "--aux-batch", "3",
                                "--save", str(tmp_path / "aux.sd")])
    result = json.loads(out.read_text())
    assert result["aux_classify"] == {"weight": 0.5, "batch": 3}
    assert result["steps"] == 1 and 0 <= result["test_miou"] <= 1
    segment_canvas.main(args + ["--save", str(tmp_path / "plain.sd")])
    assert json.loads(out.read_text())["aux_classify"] is None
    aux, plain = sd.load(tmp_path / "aux.sd"), sd.load(tmp_path / "plain.sd")
    # one step from the same seed on the same canvas: the classification loss moved the
    # encoder's weights, and left the batch-norm statistics to the canvas alone
    assert not np.allclose(np.asarray(aux["down.0.0.weight"]),
                           np.asarray(plain["down.0.0.weight"]))
    stats = [k for k in plain if "running_" in k]
    assert stats and all(np.array_equal(np.asarray(aux[k]), np.asarray(plain[k]))
                         for k in stats)
    with pytest.raises(SystemExit):
        segment_canvas.main(["--arch", "fcn", "--aux-classify", "1", "--out", str(out)])


def test_order_seed_changes_the_training_canvases_not_the_test_ones(tmp_path):
    out = tmp_path / "o.json"
    args = ["--sources", "digits", "--canvas-size", "32", "--train-images", "8",
            "--test-images", "2", "--epochs", "1", "--batch-size", "2", "--widths", "4,8",
            "--out", str(out)]
    weights = {}
    for name, extra in {"default": [], "same": ["--order-seed", "0"],
                        "other": ["--order-seed", "5"]}.items():
        segment_canvas.main(args + extra + ["--save", str(tmp_path / f"{name}.sd")])
        weights[name] = np.asarray(sd.load(tmp_path / f"{name}.sd")["down.0.0.weight"])
    assert np.array_equal(weights["default"], weights["same"])
    assert not np.allclose(weights["default"], weights["other"])
