"""``shendu detect train`` end to end on a handful of small canvases."""
import json
import math

import pytest

import shendu as sd
from shendu.cli import main


def test_detect_train_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["detect", "train", "--arch", "ssd", "--sources", "digits", "--canvas-size",
                 "64", "--train-images", "8", "--test-images", "4", "--epochs", "1",
                 "--batch-size", "4", "--out", str(out), "--quiet"])
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert result["steps"] == 2 and result["test_images"] == 4
    assert 0 <= result["metrics"]["map_50"] <= 1 and "map" in result["metrics"]
    assert result["inference_images_per_s"] > 0 and result["train_cpu_seconds"] > 0
    assert (out / "model.sd").exists() and (out / "detections.png").exists()
    assert "test mAP@0.5" in capsys.readouterr().out
    assert main(["detect"]) == 0  # no command: prints help
    # evaluate reads the run's settings from results.json and scores the same model alike
    again = tmp_path / "again.json"
    assert main(["detect", "evaluate", str(out / "model.sd"), "--test-images", "4",
                 "--out", str(again)]) == 0
    scored = json.loads(again.read_text())
    assert scored["arch"] == "ssd" and scored["canvas_size"] == 64
    assert scored["metrics"] == result["metrics"]
    per_class = scored["metrics"]["per_class"]
    assert set(per_class) <= {f"digit {i}" for i in range(10)}
    assert all(0 <= v[k] <= 1 or v[k] == -1 for v in per_class.values() for k in v)
    assert per_class and all(sorted(v) == ["ap", "ap50"] for v in per_class.values())
    assert "AP@0.5" in capsys.readouterr().out


def test_evaluate_needs_an_arch_without_a_results_file(tmp_path, capsys):
    sd.save({}, str(tmp_path / "model.sd"))
    assert main(["detect", "evaluate", str(tmp_path / "model.sd")]) == 2
    assert "--arch" in capsys.readouterr().err


def test_a_pyramid_checkpoint_with_the_unread_levels_still_loads():
    # checkpoints written before the unread pyramid levels lost their output convolution
    from shendu.vision.detection import fasterrcnn_canvas
    model = fasterrcnn_canvas(11, canvas_size=64)
    state = dict(model.state_dict())
    state["backbone.fpn.layer_blocks.1.weight"] = sd.zeros(64, 64, 3, 3)
    state["backbone.fpn.layer_blocks.1.bias"] = sd.zeros(64)
    model.load_state_dict(state)
    assert not any("layer_blocks.1" in name for name, _ in model.named_parameters())


def test_fit_stops_at_max_steps_and_ends_its_cosine_there(monkeypatch):
    from shendu._cli_detect import fit
    from shendu.vision.datasets import CanvasDetection
    from shendu.vision.detection import ssd_canvas

    data = CanvasDetection("train", 8, canvas_size=64, sources=("digits",))
    model = ssd_canvas(data.num_classes, canvas_size=64)
    rates, lines = [], []
    original = sd.optim.Adam.step

    def spy(self, *a, **k):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *a, **k)

    monkeypatch.setattr(sd.optim.Adam, "step", spy)
    steps, history = fit(model, data, lr=0.01, batch_size=2, epochs=3, max_steps=5,
                         log=lines.append)
    # 4 steps an epoch: the fifth step is the first of epoch 2, where fit stops
    assert steps == 5 and len(history) == 2 and len(lines) == 2
    want = [0.005 * (1 + math.cos(math.pi * s / 5)) for s in range(5)]
    assert rates == pytest.approx(want, rel=1e-12)
