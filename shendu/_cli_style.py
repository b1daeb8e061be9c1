"""``shendu style CONTENT STYLE OUT``: neural style transfer from the command line.

CONTENT and STYLE are image files or scikit-learn's samples (``china.jpg``,
``flower.jpg``); OUT is the image written (PNG, JPEG... by its extension).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "shendu style") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Neural style transfer (Gatys et al.): paint CONTENT in the "
        "style of STYLE. With --weights (a torchvision VGG-16 state dict) it uses VGG-16's "
        "features; without, a random multi-scale network (textures and colours only).",
        epilog="example: shendu style china.jpg flower.jpg out.png --size 128 --steps 100")
    p.add_argument("content", help="content image file, or china.jpg / flower.jpg")
    p.add_argument("style", help="style image file, or china.jpg / flower.jpg")
    p.add_argument("out", help="where to write the result")
    p.add_argument("--size", type=int, default=128, help="longer side in pixels (default 128)")
    p.add_argument("--steps", type=int, default=100,
                   help="L-BFGS iterations or Adam steps (default 100)")
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weights", default=None,
                   help="VGG-16 weights file (.safetensors, .pth or shendu file)")
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--style-weight", type=float, default=10.0)
    p.add_argument("--tv-weight", type=float, default=1.0)
    p.add_argument("--init", choices=["content", "noise"], default="content")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--side-by-side", action="store_true",
                   help="write content | style | result in one picture")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``shendu style`` with ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    import shendu as sd
    from shendu.vision.style import (
        RandomMultiScaleFeatures,
        VGGFeatures,
        load_image,
        style_transfer,
    )
    from shendu.vision.utils import save_image

    start = time.perf_counter()
    content = load_image(args.content, args.size)
    style = load_image(args.style, args.size)
    if args.weights:
        net = VGGFeatures(args.weights)
        print(f"features: VGG-16 from {args.weights}")
    else:
        net = RandomMultiScaleFeatures(seed=args.seed)
        print("features: a randomly initialised multi-scale network (no --weights given; "
              "after Ustyuzhaninov et al. 2017: textures and colours, not VGG's motifs)")
    out = style_transfer(content, style, net, steps=args.steps, optimizer=args.optimizer,
                         lr=args.lr, content_weight=args.content_weight,
                         style_weight=args.style_weight, tv_weight=args.tv_weight,
                         init=args.init, seed=args.seed, log=print)
    if args.side_by_side:
        h = content.shape[2]
        style_fit = sd.nn.functional.interpolate(style, size=(h, style.shape[3] * h //
                                                              style.shape[2]),
                                                 mode="bilinear")
        pad = sd.ones(1, 3, h, 4)
        picture = sd.cat([content, pad, style_fit.clamp(0, 1), pad, out], dim=3)
        save_image(picture, args.out, padding=0)
    else:
        save_image(out, args.out, padding=0)
    print(f"wrote {args.out} ({out.shape[3]}x{out.shape[2]}) in "
          f"{time.perf_counter() - start:.0f} s")
    return 0
