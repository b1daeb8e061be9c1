"""examples/detect_trial.py and examples/detect_misses.py run end to end on a few canvases."""
import importlib.util
import json
import pathlib

import shendu as sd
from shendu.vision.detection import ssd_canvas

_EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, _EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trial_reports_its_settings_and_map():
    before = sd.get_num_threads()
    try:
        out = load("detect_trial").main(["ssd", "2", json.dumps({"lr": 1e-3, "bs": 2})],
                                        test_images=3)
    finally:
        sd.set_num_threads(before)
    assert out["steps"] == 2 and json.loads(out["settings"]) == {"lr": 1e-3, "bs": 2}
    assert 0 <= out["map_50"] <= 1 and out["last_loss"] > 0


def test_misses_counts_every_test_object(tmp_path, capsys):
    path = tmp_path / "model.sd"
    sd.save(ssd_canvas(21, canvas_size=64).state_dict(), str(path))
    load("detect_misses").main(["ssd", str(path), "--test-images", "3", "--score", "0.0"])
    lines = capsys.readouterr().out.splitlines()
    total = int(lines[0].split()[0])
    by_class = [line for line in lines if "digit" in line or "Trouser" in line or
                "T-shirt" in line]
    assert total > 0 and lines[0].startswith(f"{total} objects: found")
    sizes = [line for line in lines if "shorter side" in line]
    assert sum(int(line.split()[-7]) for line in sizes) == total  # every object in one bin
    assert sum(int(line.split()[-7]) for line in by_class) <= total and by_class
