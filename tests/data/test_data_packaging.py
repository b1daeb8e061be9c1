"""The embedded digits and their licence are declared as package data, so a wheel
(``pip install .``, not editable) carries them."""
import fnmatch
from pathlib import Path

import pytest

import shendu.data.datasets as datasets

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[2]


def test_assets_are_package_data():
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["shendu.data.datasets"]
    assets = Path(datasets.__file__).parent / "_assets"
    files = sorted(p.relative_to(assets.parent).as_posix() for p in assets.iterdir()
                   if p.is_file())
    assert "_assets/digits.npz" in files and "_assets/LICENSE-digits.txt" in files
    for f in files:
        assert any(fnmatch.fnmatch(f, g) for g in globs), f"{f} is not in package-data"
    licence = (assets / "LICENSE-digits.txt").read_text(encoding="utf-8")
    for words in ("MNIST", "LeCun", "CC BY-SA 3.0"):
        assert words in licence
