// node sharp_bench.js FILE WARMUP RUNS OUTDIR: the process step with sharp, as a Node user would
// write it: metadata(), then one pipeline per rendition (auto-orient, resize inside the box, encode),
// awaited in turn (sharp's default; each pipeline shrinks on load). Prints one JSON line.
'use strict';
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

sharp.cache(false);

const RENDITIONS = [
  { name: 'thumbnail', ext: 'jpg', resize: [128, 128], fmt: 'jpeg' },
  { name: 'mobile', ext: 'jpg', resize: [640, null], fmt: 'jpeg' },
  { name: 'avatar', ext: 'png', resize: [512, 512], fmt: 'png' },
];

async function processOnce(input) {
  const meta = await sharp(input).metadata(); // format, size, orientation, raw EXIF
  const outputs = {};
  for (const r of RENDITIONS) {
    let p = sharp(input).rotate().resize(r.resize[0], r.resize[1], { fit: 'inside', withoutEnlargement: true });
    p = r.fmt === 'jpeg' ? p.jpeg({ quality: 80 }) : p.png();
    outputs[r.name] = await p.toBuffer();
  }
  return { meta, outputs };
}

async function main() {
  const [file, warmup, runs, out] = process.argv.slice(2);
  const input = fs.readFileSync(file);
  const times = [];
  let last;
  for (let i = 0; i < Number(warmup) + Number(runs); i++) {
    const t = process.hrtime.bigint();
    last = await processOnce(input);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (i >= Number(warmup)) times.push(ms);
  }
  fs.mkdirSync(out, { recursive: true });
  const sizes = {};
  for (const r of RENDITIONS) {
    fs.writeFileSync(path.join(out, `${r.name}.${r.ext}`), last.outputs[r.name]);
    sizes[r.name] = last.outputs[r.name].length;
  }
  const hwm = fs.readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s+(\d+)/);
  console.log(JSON.stringify({ times_ms: times, peak_rss_kb: Number(hwm[1]), outputs: sizes,
    width: last.meta.width, height: last.meta.height }));
}

main().catch((e) => { console.error(e); process.exit(1); });
