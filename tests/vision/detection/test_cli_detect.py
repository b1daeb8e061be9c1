"""``shendu detect train`` end to end on a handful of small canvases."""
import json

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
