// node sharp_batch.js OUTDIR FILE...: the process step with sharp over a batch of files, one after
// another in one process, as sharp_bench.js does it for one (metadata(), then one pipeline per
// rendition, awaited in turn); each file read from disk and its renditions written to OUTDIR.
// The side of `uploader process FILE... --out OUTDIR` that bench/batch.py times against it.
'use strict';
const fs = require('fs');
const path = require('path');
const { processOnce, RENDITIONS } = require('./sharp_bench.js');

async function main() {
  const [out, ...files] = process.argv.slice(2);
  fs.mkdirSync(out, { recursive: true });
  for (const file of files) {
    const { outputs } = await processOnce(fs.readFileSync(file));
    const stem = path.basename(file).replace(/\.[^.]*$/, '');
    for (const r of RENDITIONS) fs.writeFileSync(path.join(out, `${stem}.${r.name}.${r.ext}`), outputs[r.name]);
  }
  // As `uploader process` does on every line: the process's peak RSS, which bench/batch.py reads.
  const hwm = fs.readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s+(\d+)/);
  console.log(JSON.stringify({ files: files.length, peak_rss_kb: Number(hwm[1]) }));
}

main().catch((e) => { console.error(e); process.exit(1); });
