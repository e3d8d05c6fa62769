//! What the `uploader` commands do beyond starting the engine: render items, run the process step
//! on files. The CLI (`cli.rs`) only parses arguments and calls these.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};
use state::Item;

/// Items as a table (id, status, bytes, dimensions, renditions), or one JSON object per line.
pub fn print_items(items: &[Item], as_json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if as_json {
        for item in items {
            writeln!(out, "{}", serde_json::to_string(item)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<36}  {:<9}  {:>9}  {:>11}  renditions",
        "id", "status", "bytes", "dimensions"
    )?;
    for i in items {
        let dims = i
            .width
            .zip(i.height)
            .map(|(w, h)| format!("{w}x{h}"))
            .unwrap_or_default();
        let rends = i
            .renditions
            .as_ref()
            .map(|r| r.keys().cloned().collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<36}  {:<9}  {:>9}  {:>11}  {rends}",
            i.id, i.status, i.size, dims
        )?;
    }
    Ok(())
}

/// The process step on one file: its renditions written to `out`, its metadata (or error) as JSON.
pub fn process_file(file: &Path, out: &Path, settings: &imaging::Settings) -> Value {
    let name = file.display().to_string();
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return json!({ "file": name, "error": e.to_string() }),
    };
    let header = match imaging::probe::probe(&bytes, settings) {
        Ok(h) => h,
        Err(e) => return json!({ "file": name, "error": e.to_string() }),
    };
    let estimate = header.estimate.total();
    let rendered = match imaging::render_probed(&bytes, &header, settings) {
        Ok(r) => r,
        Err(e) => {
            return json!({ "file": name, "error": e.to_string(), "memory_estimate_bytes": estimate })
        }
    };
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let mut renditions = serde_json::Map::new();
    for r in &rendered.renditions {
        let path = out.join(format!(
            "{stem}.{}.{}",
            r.spec.name,
            r.spec.format.extension()
        ));
        if let Err(e) = std::fs::write(&path, &r.bytes) {
            return json!({ "file": name, "error": format!("writing {}: {e}", path.display()) });
        }
        renditions.insert(
            r.spec.name.clone(),
            json!({
                "path": path.display().to_string(),
                "bytes": r.bytes.len(),
                "width": r.width,
                "height": r.height,
            }),
        );
    }
    json!({
        "file": name,
        "format": rendered.format.name(),
        "width": rendered.width,
        "height": rendered.height,
        "size": bytes.len(),
        "exif": rendered.exif,
        "renditions": renditions,
        "placeholder": rendered.placeholder,
        "memory_estimate_bytes": estimate,
    })
}

/// This process's peak resident memory so far (VmHWM, Linux), in kB.
fn peak_rss_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Runs the process step on each file, printing one JSON line per file (with the process's peak
/// RSS so far, `peak_rss_kb`); errors if any failed.
pub fn process_files(
    files: &[std::path::PathBuf],
    out: &Path,
    settings: &imaging::Settings,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut failed = 0;
    for file in files {
        let mut line = process_file(file, out, settings);
        if line.get("error").is_some() {
            failed += 1;
        }
        if let (Some(fields), Some(kb)) = (line.as_object_mut(), peak_rss_kb()) {
            fields.insert("peak_rss_kb".into(), kb.into());
        }
        println!("{line}");
    }
    if failed > 0 {
        anyhow::bail!("{failed} file(s) could not be processed");
    }
    Ok(())
}
