"""examples/segment_canvas.py: its Dice loss against a NumPy reference, and one tiny run end
to end (results file with the command, commit and machine)."""
import importlib.util
import json
import pathlib

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
    weights = sd.load(tmp_path / "unet.sd")
    assert "coarse_heads.0.weight" in weights and "head.weight" in weights
    assert result["command"].startswith("python examples/segment_canvas.py")
    assert result["commit"] and result["machine"]["cpu_count"] >= 1
