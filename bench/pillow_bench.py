"""python pillow_bench.py FILE WARMUP RUNS OUTDIR: the process step with Pillow, as a Python user
who knows draft() would write it: open, read EXIF, draft() the JPEG decoder down to the largest
rendition, load once, auto-orient, then resize (Lanczos) and encode each rendition. One JSON line."""
import io
import json
import os
import sys
import time

from PIL import Image, ImageOps

RENDITIONS = [("thumbnail", "jpg", (128, 128)), ("mobile", "jpg", (640, None)), ("avatar", "png", (512, 512))]


def target(w, h, box):
    bw, bh = box
    s = min(bw / w, (bh / h) if bh else float("inf"), 1.0)
    return max(1, round(w * s)), max(1, round(h * s))


def process_once(data):
    im = Image.open(io.BytesIO(data))
    exif = im.getexif()
    meta = {k: exif.get(t) for k, t in (("make", 271), ("model", 272), ("orientation", 274))}
    w, h = im.size
    orientation = exif.get(274, 1)
    dw, dh = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    need = [target(dw, dh, box) for _, _, box in RENDITIONS]
    nw, nh = max(n[0] for n in need), max(n[1] for n in need)
    if orientation in (5, 6, 7, 8):
        nw, nh = nh, nw
    if im.format == "JPEG":
        im.draft("RGB", (nw, nh))
    im = ImageOps.exif_transpose(im)
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    outputs = {}
    for name, ext, box in RENDITIONS:
        small = im.resize(target(dw, dh, box), Image.LANCZOS)
        buf = io.BytesIO()
        if ext == "jpg":
            small.convert("RGB").save(buf, "JPEG", quality=80)
        else:
            small.save(buf, "PNG")
        outputs[name] = buf.getvalue()
    return meta, (dw, dh), outputs


def main():
    path, warmup, runs, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    data = open(path, "rb").read()
    times = []
    cpu = time.process_time()
    for i in range(warmup + runs):
        if i == warmup:
            cpu = time.process_time()
        t = time.perf_counter()
        meta, size, outputs = process_once(data)
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1000)
    cpu_ms = (time.process_time() - cpu) * 1000 / runs
    os.makedirs(out, exist_ok=True)
    for (name, ext, _) in RENDITIONS:
        with open(os.path.join(out, f"{name}.{ext}"), "wb") as f:
            f.write(outputs[name])
    hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print(json.dumps({"times_ms": times, "cpu_ms": cpu_ms, "peak_rss_kb": int(hwm.split()[1]),
                      "outputs": {k: len(v) for k, v in outputs.items()}, "width": size[0], "height": size[1]}))


if __name__ == "__main__":
    main()
