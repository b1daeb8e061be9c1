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
