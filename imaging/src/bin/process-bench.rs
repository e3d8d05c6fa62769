//! `process-bench FILE WARMUP RUNS OUTDIR`: the whole process step (header, EXIF subset, one decode,
//! every configured rendition) on one file, in memory, WARMUP + RUNS times. Prints one JSON line:
//! each run's milliseconds, peak RSS, output bytes. Writes the last run's renditions to OUTDIR.
//! Used by `make bench-images` (bench/run.sh), side by side with sharp and Pillow.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, warmup, runs, out] = args.as_slice() else {
        return Err("usage: process-bench FILE WARMUP RUNS OUTDIR".into());
    };
    let (warmup, runs): (usize, usize) = (warmup.parse()?, runs.parse()?);
    let bytes = std::fs::read(file)?;
    // The renditions and budget the deployed function would use (its environment), else defaults.
    let settings = imaging::Settings::parse(
        &std::env::var("RENDITIONS")
            .unwrap_or_else(|_| imaging::settings::DEFAULT_RENDITIONS.into()),
        std::env::var("MAX_PIXELS")
            .ok()
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(imaging::settings::DEFAULT_MAX_PIXELS),
    )?;
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    let mut cpu_start = cpu_ticks();
    for i in 0..warmup + runs {
        if i == warmup {
            cpu_start = cpu_ticks();
        }
        let started = Instant::now();
        let rendered = imaging::render(&bytes, &settings)?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if i >= warmup {
            times.push(ms);
        }
        last = Some(rendered);
    }
    // User + system CPU per measured run: steadier than wall time on a shared machine.
    let cpu_ms = (cpu_ticks() - cpu_start) as f64 * 10.0 / runs as f64;
    let rendered = last.ok_or("RUNS must be at least 1")?;
    std::fs::create_dir_all(out)?;
    let mut outputs = serde_json::Map::new();
    for o in &rendered.renditions {
        let path = std::path::Path::new(out).join(format!(
            "{}.{}",
            o.spec.name,
            o.spec.format.extension()
        ));
        std::fs::write(&path, &o.bytes)?;
        outputs.insert(o.spec.name.clone(), o.bytes.len().into());
    }
    let line = serde_json::json!({
        "times_ms": times,
        "cpu_ms": cpu_ms,
        "peak_rss_kb": peak_rss_kb(),
        "outputs": outputs,
        "width": rendered.width,
        "height": rendered.height,
        "decoded": [rendered.decoded_width, rendered.decoded_height],
        "exif": rendered.exif,
    });
    println!("{line}");
    Ok(())
}

/// utime + stime of this process, in clock ticks (1/100 s on Linux).
fn cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// VmHWM: the peak resident set of this process (Linux).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
