"""Plots write real PNG files, and missing matplotlib gives a clear install hint."""
import sys

import numpy as np
import pytest

from shendu.train import plots

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_size=(200, 200)):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= min_size[0] and height >= min_size[1]


def test_learning_curves_png_two_panels(tmp_path):
    h = {"train_loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [1.1, 0.8, 0.7, 0.75],
         "train_acc": [0.5, 0.7, 0.8, 0.9], "val_acc": [0.45, 0.6, 0.7, 0.68]}
    fig = plots.plot_learning_curves(h, path=tmp_path / "lc.png", title="run 1")
    _assert_png(tmp_path / "lc.png", (800, 300))
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_ylabel(), acc_ax.get_ylabel()) == ("loss", "accuracy")
    lines = {ln.get_label(): ln for ln in loss_ax.get_lines()}
    np.testing.assert_allclose(lines["dev"].get_ydata(), h["val_loss"])
    np.testing.assert_allclose(lines["train"].get_xdata(), [1, 2, 3, 4])
    assert "best dev loss (epoch 3)" in lines  # lowest val loss, 1-based epoch
    ticks = loss_ax.get_xticks()
    np.testing.assert_array_equal(ticks, np.round(ticks))  # whole epochs only


def test_learning_curves_tolerate_missing_keys_and_nan(tmp_path):
    fig = plots.plot_learning_curves({"loss": [1.0, float("nan"), float("inf")]},
                                     path=tmp_path / "one.png")
    assert len(fig.axes) == 1
    _assert_png(tmp_path / "one.png")
    with pytest.raises(ValueError, match=r"none of train_loss.*keys: \['lr'\]"):
        plots.plot_learning_curves({"lr": [0.1]})


def test_confusion_matrix_and_pr_curve_png(tmp_path):
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]])
    fig = plots.plot_confusion_matrix(cm, ["cat", "dog", "fox"], path=tmp_path / "cm.png",
                                      normalize=True)
    _assert_png(tmp_path / "cm.png")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 9 and texts[0] == f"{5 / 6:.2f}"
    plots.plot_confusion_matrix(np.zeros((2, 2)), path=tmp_path / "zeros.png")  # no 0/0 crash
    _assert_png(tmp_path / "zeros.png")
    with pytest.raises(ValueError, match=r"square \(C, C\) matrix, got shape \(2, 3\)"):
        plots.plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2 class_names for a 3x3"):
        plots.plot_confusion_matrix(cm, ["a", "b"])
    fig = plots.plot_pr_curve([0.5, 2 / 3, 1.0, 1.0], [1.0, 1.0, 0.5, 0.0], ap=5 / 6,
                              path=tmp_path / "pr.png")
    _assert_png(tmp_path / "pr.png")
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "AP = 0.833"
    with pytest.raises(ValueError, match="same length"):
        plots.plot_pr_curve([1.0, 0.5], [0.0])


def test_no_pyplot_state_is_touched(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    plots.plot_pr_curve([1.0, 1.0], [1.0, 0.0])
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(ImportError, match=r"pip install shendu\[train\] \(matplotlib\)"):
        plots.plot_learning_curves({"train_loss": [1.0]})
    with pytest.raises(ImportError, match="matplotlib"):
        plots.plot_confusion_matrix([[1]])
