"""python report.py CACHE_DIR: the bench table from CACHE_DIR/results/*/IMAGE.TOOL.json and the
renditions in CACHE_DIR/out/TOOL/IMAGE/. Median = the lower of the per-round medians (the box is
shared and noisy); peak RSS and bytes from that round. Quality: PSNR of each rendition against a
Lanczos resize of Pillow's full-resolution, auto-oriented decode (no draft), same size."""
import glob
import json
import math
import os
import statistics
import sys

import numpy as np
from PIL import Image, ImageOps

TOOLS = ["sharp", "pillow", "this"]
NAMES = {"sharp": "sharp (libvips)", "pillow": "Pillow + draft()", "this": "this project"}
RENDITIONS = [("thumbnail", "jpg"), ("mobile", "jpg"), ("avatar", "png")]


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255 * 255 / mse)


def rgb(im):
    if im.mode in ("RGBA", "LA"):
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


def main():
    cache = sys.argv[1]
    runs = {}
    for path in glob.glob(os.path.join(cache, "results", "*", "*.json")):
        image, tool = os.path.basename(path)[:-5].rsplit(".", 1)
        r = json.load(open(path))
        r["median"] = statistics.median(r["times_ms"])
        best = runs.get((image, tool))
        if best is None or r["median"] < best["median"]:
            runs[(image, tool)] = r
    images = sorted({i for i, _ in runs}, key=lambda i: (i.endswith(".png"), i))
    print("| image | tool | median ms | vs sharp | peak RSS | output bytes | PSNR dB thumb / mobile / avatar |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for image in images:
        full = rgb(ImageOps.exif_transpose(Image.open(os.path.join(cache, "img", image))))
        refs = {}
        sharp = runs.get((image, "sharp"))
        for tool in TOOLS:
            r = runs.get((image, tool))
            if r is None:
                continue
            scores = []
            for name, ext in RENDITIONS:
                out = rgb(Image.open(os.path.join(cache, "out", tool, image, f"{name}.{ext}")))
                if out.size not in refs:
                    refs[out.size] = np.asarray(full.resize(out.size, Image.LANCZOS))
                scores.append(psnr(np.asarray(out), refs[out.size]))
            ratio = f"{r['median'] / sharp['median']:.2f}x" if sharp else "-"
            print(f"| {image} | {NAMES[tool]} | {r['median']:.1f} | {ratio} | {r['peak_rss_kb'] / 1024:.0f} MB"
                  f" | {sum(r['outputs'].values()):,} | {' / '.join(f'{s:.1f}' for s in scores)} |")


if __name__ == "__main__":
    main()
