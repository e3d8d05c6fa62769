"""python report.py CACHE_DIR P3_ICC: the bench tables from CACHE_DIR/results/SET/*/IMAGE.TOOL.json and
the renditions in CACHE_DIR/out/SET/TOOL/IMAGE/. Median = the lower of the per-round medians (the box
is shared and noisy); peak RSS and bytes from that round. Quality: PSNR of each rendition against a
Lanczos resize of Pillow's full-resolution, auto-oriented decode (no draft), same size; for the P3
photo that decode is first converted to sRGB through its profile by LittleCMS (Pillow's ImageCms),
and the colour table compares each tool's thumbnail with that reference."""
import glob
import io
import json
import math
import os
import statistics
import sys

import numpy as np
from PIL import Image, ImageCms, ImageOps

TOOLS = ["sharp", "pillow", "this"]
NAMES = {"sharp": "sharp (libvips)", "pillow": "Pillow + draft()", "this": "this project"}
SETS = {
    "default": [("thumbnail", "jpg"), ("mobile", "jpg"), ("avatar", "png")],
    "webp": [("thumbnail", "jpg"), ("mobile", "jpg"), ("avatar", "png"), ("web", "webp")],
}
ALONE = ["thumbnail", "mobile", "avatar"]
BATCH_PHOTOS = ["p4_rot6", "p4_rot6_prog"]
P3_IMAGE = "p2_storm_p3.jpg"


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255 * 255 / mse)


def rgb(im):
    if im.mode in ("RGBA", "LA"):
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


def reference(cache, image, p3_icc):
    full = rgb(ImageOps.exif_transpose(Image.open(os.path.join(cache, "img", image))))
    if image == P3_IMAGE:
        src = ImageCms.ImageCmsProfile(io.BytesIO(open(p3_icc, "rb").read()))
        dst = ImageCms.createProfile("sRGB")
        full = ImageCms.profileToProfile(full, src, dst, renderingIntent=1, outputMode="RGB")
    return full


def load_runs(cache, set_name):
    runs = {}
    for path in glob.glob(os.path.join(cache, "results", set_name, "*", "*.json")):
        image, tool = os.path.basename(path)[:-5].rsplit(".", 1)
        r = json.load(open(path))
        r["median"] = statistics.median(r["times_ms"])
        best = runs.get((image, tool))
        if best is None or r["median"] < best["median"]:
            runs[(image, tool)] = r
    return runs


def table(cache, set_name, p3_icc):
    runs = load_runs(cache, set_name)
    renditions = SETS[set_name]
    names = " / ".join(n for n, _ in renditions)
    print(f"renditions: {set_name} ({names})\n")
    print(f"| image | tool | median ms | vs sharp | CPU ms | vs sharp | peak RSS | vs sharp | output bytes | PSNR dB {names} |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    images = sorted({i for i, _ in runs}, key=lambda i: (i.endswith(".png"), i))
    for image in images:
        full = reference(cache, image, p3_icc)
        refs = {}
        sharp = runs.get((image, "sharp"))
        for tool in TOOLS:
            r = runs.get((image, tool))
            if r is None:
                continue
            scores = []
            for name, ext in renditions:
                out = rgb(Image.open(os.path.join(cache, "out", set_name, tool, image, f"{name}.{ext}")))
                if out.size not in refs:
                    refs[out.size] = np.asarray(full.resize(out.size, Image.LANCZOS))
                scores.append(psnr(np.asarray(out), refs[out.size]))
            ratio = f"{r['median'] / sharp['median']:.2f}x" if sharp else "-"
            cpu = r.get("cpu_ms")
            cpu_ratio = f"{cpu / sharp['cpu_ms']:.2f}x" if sharp and cpu and sharp.get("cpu_ms") else "-"
            cpu = f"{cpu:.1f}" if cpu else "-"
            rss_ratio = f"{r['peak_rss_kb'] / sharp['peak_rss_kb']:.2f}x" if sharp else "-"
            print(f"| {image} | {NAMES[tool]} | {r['median']:.1f} | {ratio} | {cpu} | {cpu_ratio} | {r['peak_rss_kb'] / 1024:.0f} MB"
                  f" | {rss_ratio} | {sum(r['outputs'].values()):,} | {' / '.join(f'{s:.1f}' for s in scores)} |")
    print()
    return runs


def colour(cache, runs, p3_icc):
    """The P3 photo's thumbnail against LittleCMS's conversion: mean absolute error per channel value,
    and the largest difference of a channel's mean (the issue's measure)."""
    full = reference(cache, P3_IMAGE, p3_icc)
    print(f"colour: {P3_IMAGE}, thumbnail against LittleCMS (P3 -> sRGB, relative colorimetric)\n")
    print("| tool | mean abs error | largest channel-mean difference |")
    print("| --- | ---: | ---: |")
    for tool in TOOLS:
        path = os.path.join(cache, "out", "default", tool, P3_IMAGE, "thumbnail.jpg")
        if not os.path.exists(path):
            continue
        out = np.asarray(rgb(Image.open(path))).astype(np.float64)
        ref = np.asarray(full.resize(out.shape[1::-1], Image.LANCZOS)).astype(np.float64)
        mae = np.mean(np.abs(out - ref))
        means = np.abs(out.mean(axis=(0, 1)) - ref.mean(axis=(0, 1))).max()
        print(f"| {NAMES[tool]} | {mae:.2f} | {means:.2f} |")
    colour_cost(cache)
    print()


def colour_cost(cache):
    """The P3 photo against the same photo untagged, one ratio of medians per round (the two run back
    to back, so a noisy stretch of the machine hits both): the median ratio and the spread."""
    ratios, cpu_ratios = [], []
    for round_dir in sorted(glob.glob(os.path.join(cache, "results", "colour-cost", "*"))):
        try:
            plain = json.load(open(os.path.join(round_dir, "p2_storm.jpg.this.json")))
            p3 = json.load(open(os.path.join(round_dir, f"{P3_IMAGE}.this.json")))
        except FileNotFoundError:
            continue
        ratios.append(statistics.median(p3["times_ms"]) / statistics.median(plain["times_ms"]))
        cpu_ratios.append(p3["cpu_ms"] / plain["cpu_ms"])
    if not ratios:
        return
    pct = lambda r: f"{100 * (r - 1):+.1f}%"
    print(f"\ncolour conversion cost (this project): {P3_IMAGE} against p2_storm.jpg (the same photo"
          f" without its profile), {len(ratios)} rounds back to back: median time {pct(statistics.median(ratios))}"
          f" ({pct(min(ratios))} to {pct(max(ratios))}), CPU {pct(statistics.median(cpu_ratios))}")


def alone(cache):
    """Each default rendition alone on p4_rot6.jpg: the process step with that one rendition."""
    rows = []
    for name in ALONE:
        runs = load_runs(cache, name)
        this, sharp = runs.get(("p4_rot6.jpg", "this")), runs.get(("p4_rot6.jpg", "sharp"))
        if this and sharp:
            rows.append((name, this, sharp))
    if not rows:
        return
    print("each rendition alone: p4_rot6.jpg, the process step with that one rendition (decode included)\n")
    print("| rendition | this project ms | CPU ms | sharp ms | CPU ms | vs sharp (time) | vs sharp (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, this, sharp in rows:
        print(f"| {name} | {this['median']:.1f} | {this['cpu_ms']:.1f} | {sharp['median']:.1f} | {sharp['cpu_ms']:.1f}"
              f" | {this['median'] / sharp['median']:.2f}x | {this['cpu_ms'] / sharp['cpu_ms']:.2f}x |")
    print()


def batch(cache):
    """`uploader process` over 12 copies against sharp over the same 12 (bench/batch.py): whole
    processes, medians of the rounds, ratios as the median of each round's ratio."""
    rows = []
    for photo in BATCH_PHOTOS:
        path = os.path.join(cache, "results", f"batch.{photo}.json")
        if os.path.exists(path):
            rows.append((photo, json.load(open(path))))
    if not rows:
        return
    rounds = len(rows[0][1]["runs"]["a"])
    print(f"batch: 12 copies of a photo, the whole process, default renditions, {rounds} rounds in turn\n")
    print("| photo | tool | wall s | vs sharp | CPU s | vs sharp | peak RSS | vs sharp |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for photo, r in rows:
        m, x = r["median"], r["ratio"]
        print(f"| {photo}.jpg x 12 | sharp (libvips) | {m['b']['wall_s']:.3f} | 1.00x | {m['b']['cpu_s']:.3f} | 1.00x"
              f" | {m['b']['peak_rss_kb'] / 1024:.1f} MB | 1.00x |")
        print(f"| {photo}.jpg x 12 | this project (`uploader process`) | {m['a']['wall_s']:.3f} | {x['wall_s']:.2f}x"
              f" | {m['a']['cpu_s']:.3f} | {x['cpu_s']:.2f}x | {m['a']['peak_rss_kb'] / 1024:.1f} MB | {x['peak_rss_kb']:.2f}x |")
    print()


def main():
    cache, p3_icc = sys.argv[1], sys.argv[2]
    runs = table(cache, "default", p3_icc)
    if any(image == P3_IMAGE for image, _ in runs):
        colour(cache, runs, p3_icc)
    if glob.glob(os.path.join(cache, "results", "webp", "*")):
        table(cache, "webp", p3_icc)
    alone(cache)
    batch(cache)


if __name__ == "__main__":
    main()
