#!/usr/bin/env bash
# make bench-images: the process step (header + EXIF + decode + all three renditions) of this project,
# sharp and Pillow, side by side on real photos, each run in its own process.
#
# Photos come from Debian wallpaper packages (apt-get download; nothing large is committed):
#   p2_storm.jpg     mate-backgrounds            Storm.jpg, 1920x1280 baseline, Canon EXIF
#   p12_prog.jpg     lomiri-wallpapers-16.04     Dragonfly_by_Bolly.jpg, 4224x3168 progressive
#   p12_base.jpg     the same, made baseline by `jpegtran -copy all -optimize` (lossless)
#   p20_kleiber.jpg  lomiri-wallpapers-20.04     Kleiber_by_Lukas_Baubkus.jpg, 6028x3391 baseline
#   path4mp.png      plasma-workspace-wallpapers Path 2560x1600.jpg, saved as PNG by Pillow
#   p2_storm_p3.jpg  p2_storm.jpg with bench/DisplayP3.icc embedded (APP2): the same values, taken as
#                    Display P3 (a profile from the published P3 primaries, D65, sRGB curve; LittleCMS)
#   p4_rot6.jpg      plasma-workspace-wallpapers Path 2560x1600.jpg (Olympus E-M1, baseline 4:4:4),
#                    its EXIF rewritten with Orientation 6 (turned a quarter clockwise to be shown);
#                    the image data is the file's own, byte for byte
#   p4_rot6_prog.jpg p4_rot6.jpg made progressive by `jpegtran -copy all -progressive` (lossless)
#   p2_storm.webp    p2_storm.jpg saved by Pillow as lossy WebP (quality 80): a browser's "save image"
#   p2_storm.avif    p2_storm.jpg saved by Pillow as AVIF (quality 60, 4:2:0, 8-bit): the same
#   pan_storm.gif    an animated GIF of 24 frames, 480x320, panning across p2_storm.jpg (Pillow's
#                    palette per frame, 80 ms a frame): a chat app's animation; renditions take frame 1
# Two rendition sets: the three defaults (all three tools), and the defaults plus
# web:width=1280:webp (sharp and this project; Pillow is left out of that one).
# Then a batch, as the process function meets one: `uploader process` over 12 copies of p4_rot6.jpg
# (and of p4_rot6_prog.jpg) against sharp over the same files in one Node process, each whole
# process timed from outside (bench/batch.py: wall, CPU, peak RSS, in turn, BATCH_ROUNDS rounds);
# and each default rendition alone on p4_rot6.jpg (this project and sharp).
# Everything lives in bench/.cache/ (git-ignored): packages, images, sharp (npm, pinned), Pillow +
# numpy (venv, pinned), per-run JSON and renditions. Needs Debian/Ubuntu (apt-get), Node + npm, Python 3.
#
# WARMUP (2), RUNS (15) and ROUNDS (2: forward order, then reverse) can be set in the environment.
# Times are wall-clock medians and CPU time (user + system, every thread) per run: on a shared
# machine the CPU figures are the steadier of the two.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/bench/.cache"
WARMUP=${WARMUP:-2}
RUNS=${RUNS:-15}
ROUNDS=${ROUNDS:-2}
CARGO=${CARGO:-cargo}
PYTHON=${PYTHON:-python3}
SHARP_PIN=sharp@0.35.5
PY_PINS=(Pillow==12.0.0 numpy==2.3.4)
PACKAGES=(mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers)

say() { echo "bench: $*" >&2; }
mkdir -p "$CACHE"/{debs,pkgs,img}

# -- tools ---------------------------------------------------------------------------------------
if ! command -v jpegtran >/dev/null; then
  say "installing libjpeg-turbo-progs (jpegtran) with apt-get"
  sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -q libjpeg-turbo-progs >/dev/null \
    || { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q libjpeg-turbo-progs >/dev/null; }
fi
if [[ "$(cat "$CACHE/venv/.stamp" 2>/dev/null)" != "${PY_PINS[*]}" ]]; then
  say "installing ${PY_PINS[*]} into bench/.cache/venv"
  rm -rf "$CACHE/venv"
  "$PYTHON" -m venv "$CACHE/venv"
  "$CACHE/venv/bin/python" -m pip install -q --disable-pip-version-check "${PY_PINS[@]}"
  echo "${PY_PINS[*]}" >"$CACHE/venv/.stamp"
fi
if [[ "$(cat "$CACHE/node/.stamp" 2>/dev/null)" != "$SHARP_PIN" ]]; then
  say "installing $SHARP_PIN into bench/.cache/node"
  rm -rf "$CACHE/node"; mkdir -p "$CACHE/node"
  npm install --prefix "$CACHE/node" --no-audit --no-fund --loglevel=error "$SHARP_PIN" >/dev/null
  echo "$SHARP_PIN" >"$CACHE/node/.stamp"
fi
say "building process-bench and uploader (release)"
BIN=$(CARGO="$CARGO" "$ROOT/scripts/cargo-exe.sh" --profile local --quiet -p imaging --features bench,avif --bin process-bench)
UPLOADER=$(CARGO="$CARGO" "$ROOT/scripts/cargo-exe.sh" --profile local --quiet -p local --bin uploader)

# -- photos --------------------------------------------------------------------------------------
for pkg in "${PACKAGES[@]}"; do
  if ! compgen -G "$CACHE/debs/${pkg}_*.deb" >/dev/null; then
    say "apt-get download $pkg"
    (cd "$CACHE/debs" && apt-get download -q "$pkg" >/dev/null 2>&1) \
      || { say "apt-get update, then download $pkg again"; apt-get update -q >/dev/null 2>&1 || true;
           (cd "$CACHE/debs" && apt-get download -q "$pkg" >/dev/null); }
    dpkg-deb -x "$CACHE/debs/${pkg}"_*.deb "$CACHE/pkgs"
  fi
done
P="$CACHE/pkgs"
IMG="$CACHE/img"
[[ -f "$IMG/p2_storm.jpg" ]] || cp "$P/usr/share/backgrounds/mate/nature/Storm.jpg" "$IMG/p2_storm.jpg"
[[ -f "$IMG/p12_prog.jpg" ]] || cp "$P/usr/share/backgrounds/Dragonfly_by_Bolly.jpg" "$IMG/p12_prog.jpg"
[[ -f "$IMG/p12_base.jpg" ]] || jpegtran -copy all -optimize -outfile "$IMG/p12_base.jpg" "$IMG/p12_prog.jpg"
[[ -f "$IMG/p20_kleiber.jpg" ]] || cp "$P/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg" "$IMG/p20_kleiber.jpg"
[[ -f "$IMG/path4mp.png" ]] || "$CACHE/venv/bin/python" -c \
  'import sys; from PIL import Image; Image.open(sys.argv[1]).convert("RGB").save(sys.argv[2], compress_level=6)' \
  "$P/usr/share/wallpapers/Path/contents/images/2560x1600.jpg" "$IMG/path4mp.png"
[[ -f "$IMG/p2_storm_p3.jpg" ]] || "$CACHE/venv/bin/python" -c '
import sys
jpeg, icc = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
body = b"ICC_PROFILE\0\x01\x01" + icc
app2 = b"\xff\xe2" + (2 + len(body)).to_bytes(2, "big") + body
open(sys.argv[3], "wb").write(jpeg[:2] + app2 + jpeg[2:])' "$IMG/p2_storm.jpg" "$ROOT/bench/DisplayP3.icc" "$IMG/p2_storm_p3.jpg"
[[ -f "$IMG/p2_storm.webp" ]] || "$CACHE/venv/bin/python" -c \
  'import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], quality=80)' \
  "$IMG/p2_storm.jpg" "$IMG/p2_storm.webp"
[[ -f "$IMG/p2_storm.avif" ]] || "$CACHE/venv/bin/python" -c \
  'import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], quality=60)' \
  "$IMG/p2_storm.jpg" "$IMG/p2_storm.avif"
[[ -f "$IMG/pan_storm.gif" ]] || "$CACHE/venv/bin/python" -c '
import sys
from PIL import Image
src = Image.open(sys.argv[1]).convert("RGB").resize((960, 640))
frames = [src.crop((20 * i, 10 * i, 20 * i + 480, 10 * i + 320)).quantize(256) for i in range(24)]
frames[0].save(sys.argv[2], save_all=True, append_images=frames[1:], duration=80, loop=0)' \
  "$IMG/p2_storm.jpg" "$IMG/pan_storm.gif"
[[ -f "$IMG/p4_rot6.jpg" ]] || "$CACHE/venv/bin/python" -c '
import sys
from PIL import Image
data = open(sys.argv[1], "rb").read()
exif = Image.open(sys.argv[1]).getexif()
exif[0x0112] = 6  # Orientation: shown turned a quarter clockwise
body = exif.tobytes()  # "Exif\0\0" and the TIFF block
app1 = b"\xff\xe1" + (2 + len(body)).to_bytes(2, "big") + body
at = 2  # the old Exif APP1 is replaced (or the new one goes after SOI); nothing else changes
while data[at] == 0xFF and data[at + 1] not in (0xDA, 0xD9):
    end = at + 2 + int.from_bytes(data[at + 2:at + 4], "big")
    if data[at + 1] == 0xE1 and data[at + 4:at + 10] == b"Exif\0\0":
        data = data[:at] + app1 + data[end:]
        break
    at = end
else:
    data = data[:2] + app1 + data[2:]
open(sys.argv[2], "wb").write(data)' "$P/usr/share/wallpapers/Path/contents/images/2560x1600.jpg" "$IMG/p4_rot6.jpg"
[[ -f "$IMG/p4_rot6_prog.jpg" ]] || jpegtran -copy all -progressive -outfile "$IMG/p4_rot6_prog.jpg" "$IMG/p4_rot6.jpg"
IMAGES=(p2_storm.jpg p2_storm_p3.jpg p4_rot6.jpg p4_rot6_prog.jpg p12_base.jpg p12_prog.jpg p20_kleiber.jpg path4mp.png p2_storm.webp p2_storm.avif pan_storm.gif)
# BENCH_IMAGES="a.jpg b.jpg" and BENCH_SETS="default" narrow a run.
[[ -z "${BENCH_IMAGES:-}" ]] || read -r -a IMAGES <<<"$BENCH_IMAGES"
read -r -a RUN_SETS <<<"${BENCH_SETS:-default webp}"
DEFAULT_SET=thumbnail:fit=128x128:jpeg,mobile:width=640:jpeg,avatar:fit=512x512:png
declare -A SETS=([default]="$DEFAULT_SET" [colour-cost]="$DEFAULT_SET" [webp]="$DEFAULT_SET,web:width=1280:webp"
                 [thumbnail]=thumbnail:fit=128x128:jpeg [mobile]=mobile:width=640:jpeg [avatar]=avatar:fit=512x512:png)

# -- runs ----------------------------------------------------------------------------------------
run_one() { # ROUND IMAGE TOOL SET
  local out="$CACHE/out/$4/$3/$2" json="$CACHE/results/$4/$1/$2.$3.json"
  mkdir -p "$CACHE/results/$4/$1"
  export RENDITIONS="${SETS[$4]}"
  case $3 in
    this) "$BIN" "$IMG/$2" "$WARMUP" "$RUNS" "$out" >"$json" ;;
    sharp) NODE_PATH="$CACHE/node/node_modules" node "$ROOT/bench/sharp_bench.js" "$IMG/$2" "$WARMUP" "$RUNS" "$out" >"$json" ;;
    pillow) "$CACHE/venv/bin/python" "$ROOT/bench/pillow_bench.py" "$IMG/$2" "$WARMUP" "$RUNS" "$out" >"$json" ;;
  esac
}
rm -rf "$CACHE/results" "$CACHE/out"
for set in "${RUN_SETS[@]}"; do
  TOOLS=(sharp pillow this)
  [[ $set == default ]] || TOOLS=(sharp this)
  for round in $(seq 1 "$ROUNDS"); do
    order=("${IMAGES[@]}")
    tools=("${TOOLS[@]}")
    if (( round % 2 == 0 )); then
      order=($(printf '%s\n' "${IMAGES[@]}" | tac)); tools=($(printf '%s\n' "${TOOLS[@]}" | tac))
    fi
    for image in "${order[@]}"; do
      for tool in "${tools[@]}"; do
        say "$set, round $round: $image, $tool"
        run_one "$round" "$image" "$tool" "$set"
      done
    done
  done
done

# The colour step's cost: the same photo with and without its Display P3 profile, this project only,
# alternated over more rounds than the tables use, so that the two are measured side by side.
if [[ " ${IMAGES[*]} " == *" p2_storm.jpg "* && " ${IMAGES[*]} " == *" p2_storm_p3.jpg "* ]]; then
  for round in $(seq 1 "${COLOUR_ROUNDS:-10}"); do
    pair=(p2_storm.jpg p2_storm_p3.jpg)
    (( round % 2 == 0 )) && pair=(p2_storm_p3.jpg p2_storm.jpg)
    say "colour cost, round $round"
    for image in "${pair[@]}"; do run_one "$round" "$image" this colour-cost; done
  done
fi

# Each default rendition alone, on the rotated 4 MP photo: what each costs on top of the decode.
if [[ " ${IMAGES[*]} " == *" p4_rot6.jpg "* ]]; then
  for round in $(seq 1 "$ROUNDS"); do
    for set in thumbnail mobile avatar; do
      for tool in this sharp; do
        say "$set alone, round $round: $tool"
        run_one "$round" p4_rot6.jpg "$tool" "$set"
      done
    done
  done
fi

# The batch: 12 copies of a photo through `uploader process`, and through sharp in one Node process.
BATCH_ROUNDS=${BATCH_ROUNDS:-7}
for photo in p4_rot6.jpg p4_rot6_prog.jpg; do
  [[ " ${IMAGES[*]} " == *" $photo "* ]] || continue
  dir="$CACHE/batch/${photo%.jpg}"
  rm -rf "$dir"; mkdir -p "$dir/in"
  for i in $(seq -w 1 12); do cp "$IMG/$photo" "$dir/in/photo_$i.jpg"; done
  say "batch of 12 $photo: uploader process and sharp, $BATCH_ROUNDS rounds"
  NODE_PATH="$CACHE/node/node_modules" RENDITIONS="$DEFAULT_SET" "$PYTHON" "$ROOT/bench/batch.py" \
    "$CACHE/results/batch.${photo%.jpg}.json" "$BATCH_ROUNDS" 1 \
    -- "$UPLOADER" process "$dir"/in/*.jpg --out "$dir/this" \
    -- node "$ROOT/bench/sharp_batch.js" "$dir/sharp" "$dir"/in/*.jpg
done

echo
echo "process step per image (header + EXIF + decode + colour + every rendition), warm-up $WARMUP, then"
echo "$RUNS runs, $ROUNDS rounds; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
"$CACHE/venv/bin/python" "$ROOT/bench/report.py" "$CACHE" "$ROOT/bench/DisplayP3.icc"
