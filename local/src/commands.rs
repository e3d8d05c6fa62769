//! What the `uploader` commands do beyond starting the engine: render items, run the process step
//! on files. The CLI (`cli.rs`) only parses arguments and calls these.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};
use state::{Item, ItemTable, Query, Selection, Status};

/// The selection a `--status` names: a status, `stalled`, or every item.
pub fn selection(status: Option<&str>) -> anyhow::Result<Selection> {
    Ok(match status {
        None => Selection::All,
        Some("stalled") => Selection::Stalled,
        Some(s) => Selection::Status(s.parse::<Status>().map_err(|e| {
            anyhow::anyhow!("{e}: one of uploaded, processed, notified, failed, stalled")
        })?),
    })
}

/// Up to `limit` items of `selection`, newest first (all of them if `limit` is 0), a page at a time.
pub async fn items(
    table: &dyn ItemTable,
    selection: Selection,
    limit: usize,
) -> anyhow::Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut q = Query::first(selection, 100);
    loop {
        let page = table.query(&q).await?;
        out.extend(page.items);
        if limit > 0 && out.len() >= limit {
            out.truncate(limit);
            return Ok(out);
        }
        match page.next {
            Some(next) => q.after = Some(next),
            None => return Ok(out),
        }
    }
}

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
pub fn process_file(
    file: &Path,
    out: &Path,
    settings: &imaging::Settings,
    bytes: &mut Vec<u8>,
) -> Value {
    let name = file.display().to_string();
    bytes.clear();
    if let Err(e) = std::fs::File::open(file).and_then(|mut f| f.read_to_end(bytes)) {
        return json!({ "file": name, "error": e.to_string() });
    }
    let bytes = &bytes[..];
    let header = match imaging::probe::probe(bytes, settings) {
        Ok(h) => h,
        Err(e) => return json!({ "file": name, "error": e.to_string() }),
    };
    let estimate = header.estimate.total();
    let rendered = match imaging::render_probed(bytes, &header, settings) {
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
        "frames": rendered.frames,
        "duration_ms": rendered.duration_ms,
        "warnings": rendered.warnings,
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

/// The page faults this process has taken so far that the kernel served without I/O (minflt in
/// /proc/self/stat): each one a page mapped in, most of them zeroed first.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (in parentheses, which may hold spaces): minflt is the 8th.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(7)?
        .parse()
        .ok()
}

/// Runs the process step on each file, printing one JSON line per file (with the process's peak
/// RSS so far, `peak_rss_kb`, and its minor page faults so far, `minor_faults`); errors if any
/// failed.
pub fn process_files(
    files: &[std::path::PathBuf],
    out: &Path,
    settings: &imaging::Settings,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut failed = 0;
    // One buffer for every file's bytes: the next file reuses the pages the last one faulted in.
    let mut bytes = Vec::new();
    for file in files {
        let mut line = process_file(file, out, settings, &mut bytes);
        if line.get("error").is_some() {
            failed += 1;
        }
        if let Some(fields) = line.as_object_mut() {
            if let Some(kb) = peak_rss_kb() {
                fields.insert("peak_rss_kb".into(), kb.into());
            }
            if let Some(faults) = minor_faults() {
                fields.insert("minor_faults".into(), faults.into());
            }
        }
        println!("{line}");
    }
    if failed > 0 {
        anyhow::bail!("{failed} file(s) could not be processed");
    }
    Ok(())
}

/// A file dropped into the bucket: where it went and the id its item gets.
#[derive(Debug, serde::Serialize)]
pub struct DropIn {
    pub file: String,
    pub key: String,
    pub id: String,
    /// How many functions the bucket notified (0: no rule matched the key).
    pub notified: usize,
}

/// Puts `file` into the engine's bucket under `ingest/<file name>` with its notifications: the
/// local twin of `aws s3 cp FILE s3://BUCKET/ingest/`.
pub async fn drop_in(engine: &local_engine::Engine, file: &Path) -> anyhow::Result<DropIn> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no file name", file.display()))?;
    let key = format!("{}{name}", ingest::DROP_INS);
    let bucket = engine.store().bucket().to_owned();
    let (etag, notified) = engine.put_object(&key, bytes.into()).await?;
    Ok(DropIn {
        file: file.display().to_string(),
        id: state::ImageId::derived(&format!("s3://{bucket}/{key}#{etag}")).to_string(),
        key,
        notified,
    })
}

/// The two steps of a direct upload: reserve at `api`, then PUT `file` to the signed URL. Returns
/// the item as the API answers the reservation (`pending`), with the PUT's status.
pub async fn upload_direct(api: &str, api_key: Option<&str>, file: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let kind = state::media::sniff(&bytes).with_context(|| file.display().to_string())?;
    let http = reqwest::Client::builder().build()?;
    let mut reserve = http
        .post(format!("{}/uploads", api.trim_end_matches('/')))
        .json(&json!({ "size": bytes.len(), "content_type": kind.content_type() }));
    if let Some(key) = api_key {
        reserve = reserve.header("x-api-key", key);
    }
    let resp = reserve.send().await.context("reserving")?;
    let status = resp.status();
    let reservation: Value = resp.json().await.context("the reservation's JSON")?;
    anyhow::ensure!(
        status.as_u16() == 201,
        "reserving {}: {status} {reservation}",
        file.display()
    );
    let url = reservation["url"]
        .as_str()
        .context("no url in the reservation")?;
    let mut put = http.put(url).body(bytes);
    for (name, value) in reservation["headers"].as_object().into_iter().flatten() {
        put = put.header(name, value.as_str().unwrap_or_default());
    }
    let put = put.send().await.context("uploading")?;
    anyhow::ensure!(
        put.status().is_success(),
        "uploading {}: {} {}",
        file.display(),
        put.status(),
        put.text().await.unwrap_or_default()
    );
    Ok(json!({
        "file": file.display().to_string(),
        "id": reservation["id"],
        "status": "uploaded",
        "item": format!("{}/items/{}", api.trim_end_matches('/'), reservation["id"].as_str().unwrap_or_default()),
    }))
}
