// node sharp_bench.js FILE WARMUP RUNS OUTDIR: the process step with sharp, as a Node user would
// write it: metadata(), then one pipeline per rendition (auto-orient, resize inside the box, encode;
// sharp converts an embedded profile to sRGB by default), awaited in turn (sharp's default; each
// pipeline shrinks on load). The renditions are RENDITIONS, in the project's syntax (jpeg, png and
// webp, with :q=). Prints one JSON line.
'use strict';
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

sharp.cache(false);

const DEFAULT = 'thumbnail:fit=128x128:jpeg,mobile:width=640:jpeg,avatar:fit=512x512:png';
const QUALITY = { jpeg: 80, webp: 80 }; // the project's defaults, and sharp's
const RENDITIONS = (process.env.RENDITIONS || DEFAULT).split(',').map((spec) => {
  const [name, size, fmt, ...opts] = spec.split(':');
  const [kind, value] = size.split('=');
  const resize = kind === 'fit' ? value.split('x').map(Number) : [Number(value), null];
  const q = opts.find((o) => o.startsWith('q='));
  const ext = { jpeg: 'jpg', png: 'png', webp: 'webp' }[fmt];
  if (!ext) throw new Error(`sharp_bench: no ${fmt} here`);
  return { name, ext, resize, fmt, quality: q ? Number(q.slice(2)) : QUALITY[fmt] };
});

async function processOnce(input) {
  const meta = await sharp(input).metadata(); // format, size, orientation, raw EXIF
  const outputs = {};
  for (const r of RENDITIONS) {
    let p = sharp(input).rotate().resize(r.resize[0], r.resize[1], { fit: 'inside', withoutEnlargement: true });
    if (r.fmt === 'jpeg') p = p.jpeg({ quality: r.quality });
    else if (r.fmt === 'webp') p = p.webp({ quality: r.quality });
    else p = p.png();
    outputs[r.name] = await p.toBuffer();
  }
  return { meta, outputs };
}

async function main() {
  const [file, warmup, runs, out] = process.argv.slice(2);
  const input = fs.readFileSync(file);
  const times = [];
  let last;
  let cpu = process.cpuUsage();
  for (let i = 0; i < Number(warmup) + Number(runs); i++) {
    if (i === Number(warmup)) cpu = process.cpuUsage();
    const t = process.hrtime.bigint();
    last = await processOnce(input);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (i >= Number(warmup)) times.push(ms);
  }
  const used = process.cpuUsage(cpu); // every thread of the process, user + system
  const cpuMs = (used.user + used.system) / 1000 / Number(runs);
  fs.mkdirSync(out, { recursive: true });
  const sizes = {};
  for (const r of RENDITIONS) {
    fs.writeFileSync(path.join(out, `${r.name}.${r.ext}`), last.outputs[r.name]);
    sizes[r.name] = last.outputs[r.name].length;
  }
  const hwm = fs.readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s+(\d+)/);
  console.log(JSON.stringify({ times_ms: times, cpu_ms: cpuMs, peak_rss_kb: Number(hwm[1]), outputs: sizes,
    width: last.meta.width, height: last.meta.height }));
}

module.exports = { processOnce, RENDITIONS };

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
