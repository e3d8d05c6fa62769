//! `bench-tools load`: a load generator for a running engine. It uploads one image over HTTP, either
//! as fast as `concurrency` connections allow or at a fixed rate, then waits for every accepted item
//! to finish and reports throughput, upload->notified latency from the items' own timestamps, and
//! the engine's CPU time per item (from /proc, when given its pid).
//!
//! A `503` is the engine asking for time (admission control, or its upload buffer full), not a
//! failure: every sender waits out its `Retry-After` (1 s when absent) before the next upload,
//! and the report counts them as `throttled`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub url: String,
    pub image: Bytes,
    pub content_type: String,
    pub duration: Duration,
    /// Uploads per second; 0 = as fast as `concurrency` allows.
    pub rate: f64,
    pub concurrency: usize,
    pub engine_pid: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub accepted: usize,
    /// 503s with (or without) Retry-After: the engine's back-pressure, waited out.
    pub throttled: usize,
    /// Other answers than 201 and 503.
    pub refused: usize,
    pub errors: usize,
    pub offered_per_s: f64,
    pub uploads_per_s: f64,
    /// Items notified per second, from the first upload to the last notice.
    pub end_to_end_per_s: f64,
    pub upload_p50_ms: f64,
    pub upload_p99_ms: f64,
    pub notified_p50_ms: f64,
    pub notified_p99_ms: f64,
    pub notified_max_ms: f64,
    pub failed_items: usize,
    pub engine_cpu_ms_per_item: Option<f64>,
}

/// How long to wait after a 503 that names no Retry-After.
const DEFAULT_BACK_OFF: Duration = Duration::from_secs(1);

/// `Retry-After` in seconds (the HTTP-date form is not used by the engine).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let s = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    s.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Sleeps until the engine's last Retry-After has passed; `true` if it had to wait.
async fn wait_out(paused_until: &std::sync::Mutex<Instant>) -> bool {
    let until = *paused_until.lock().expect("not poisoned");
    if until <= Instant::now() {
        return false;
    }
    tokio::time::sleep_until(until.into()).await;
    true
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// utime + stime of a process, in milliseconds.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1000.0 / 100.0) // USER_HZ is 100 on Linux
}

pub async fn run(spec: LoadSpec) -> anyhow::Result<LoadReport> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(spec.concurrency)
        .build()?;
    let upload_url = format!("{}/upload", spec.url.trim_end_matches('/'));
    let cpu_before = spec.engine_pid.and_then(cpu_ms);
    let ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let upload_ms = Arc::new(Mutex::new(Vec::<f64>::new()));
    let counts = Arc::new(Mutex::new((0usize, 0usize)));
    let throttled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // No upload starts before this instant: pushed forward by every 503's Retry-After.
    let paused_until = Arc::new(std::sync::Mutex::new(Instant::now()));
    let started = Instant::now();
    let deadline = started + spec.duration;
    let interval = (spec.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / spec.rate));

    let one = {
        let (url, image, ct) = (
            upload_url.clone(),
            spec.image.clone(),
            spec.content_type.clone(),
        );
        let (ids, upload_ms, counts) = (ids.clone(), upload_ms.clone(), counts.clone());
        let (throttled, paused_until) = (throttled.clone(), paused_until.clone());
        move |http: reqwest::Client| {
            let (url, image, ct) = (url.clone(), image.clone(), ct.clone());
            let (ids, upload_ms, counts) = (ids.clone(), upload_ms.clone(), counts.clone());
            let (throttled, paused_until) = (throttled.clone(), paused_until.clone());
            async move {
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .header("content-type", ct)
                    .body(image)
                    .send()
                    .await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                match resp {
                    Ok(r) if r.status() == 201 => {
                        let item: Value = r.json().await.unwrap_or_default();
                        if let Some(id) = item["id"].as_str() {
                            ids.lock().await.push(id.to_owned());
                        }
                        upload_ms.lock().await.push(ms);
                    }
                    Ok(r) if r.status() == 503 => {
                        throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let wait = retry_after(r.headers()).unwrap_or(DEFAULT_BACK_OFF);
                        let mut until = paused_until.lock().expect("not poisoned");
                        *until = (*until).max(Instant::now() + wait);
                    }
                    Ok(_) => counts.lock().await.0 += 1,
                    Err(_) => counts.lock().await.1 += 1,
                }
            }
        }
    };

    let mut sent = 0usize;
    match interval {
        // Open loop: one upload every interval, however long each takes (bounded in flight).
        Some(every) => {
            let gate = Arc::new(tokio::sync::Semaphore::new(spec.concurrency.max(1) * 64));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                if wait_out(&paused_until).await {
                    // The ticks missed while waiting are not sent in a burst afterwards.
                    tick.reset();
                }
                let permit = gate.clone().acquire_owned().await?;
                let fut = one(http.clone());
                tasks.push(tokio::spawn(async move {
                    fut.await;
                    drop(permit);
                }));
                sent += 1;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        // Closed loop: `concurrency` workers, each uploading again as soon as it is answered.
        None => {
            let sent_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let workers: Vec<_> = (0..spec.concurrency.max(1))
                .map(|_| {
                    let (http, sent_count) = (http.clone(), sent_count.clone());
                    let one = one.clone();
                    let paused_until = paused_until.clone();
                    tokio::spawn(async move {
                        while Instant::now() < deadline {
                            wait_out(&paused_until).await;
                            if Instant::now() >= deadline {
                                break;
                            }
                            one(http.clone()).await;
                            sent_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for w in workers {
                let _ = w.await;
            }
            sent = sent_count.load(std::sync::atomic::Ordering::Relaxed);
        }
    }
    let sending = started.elapsed().as_secs_f64();

    // Wait for every accepted item to reach an end state, then read its timestamps.
    let ids = ids.lock().await.clone();
    let mut items: Vec<Value> = Vec::with_capacity(ids.len());
    let wait_deadline = Instant::now() + Duration::from_secs(300);
    for id in &ids {
        let url = format!("{}/items/{id}", spec.url.trim_end_matches('/'));
        loop {
            let item: Value = http
                .get(&url)
                .send()
                .await?
                .json()
                .await
                .context("item JSON")?;
            if item["status"] == "notified" || item["status"] == "failed" {
                items.push(item);
                break;
            }
            anyhow::ensure!(
                Instant::now() < wait_deadline,
                "item {id} did not finish in 300 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let cpu_after = spec.engine_pid.and_then(cpu_ms);

    let mut latencies: Vec<f64> = items
        .iter()
        .filter(|i| i["status"] == "notified")
        .filter_map(|i| Some((i["notified_at"].as_i64()? - i["created_at"].as_i64()?) as f64))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut upload_ms = upload_ms.lock().await.clone();
    upload_ms.sort_by(f64::total_cmp);
    let first = items
        .iter()
        .filter_map(|i| i["created_at"].as_i64())
        .min()
        .unwrap_or(0);
    let last = items
        .iter()
        .filter_map(|i| i["updated_at"].as_i64())
        .max()
        .unwrap_or(0);
    let span_s = ((last - first) as f64 / 1000.0).max(1e-3);
    let (refused, errors) = *counts.lock().await;
    Ok(LoadReport {
        accepted: ids.len(),
        throttled: throttled.load(std::sync::atomic::Ordering::Relaxed),
        refused,
        errors,
        offered_per_s: sent as f64 / sending,
        uploads_per_s: ids.len() as f64 / sending,
        end_to_end_per_s: latencies.len() as f64 / span_s,
        upload_p50_ms: percentile(&upload_ms, 50.0),
        upload_p99_ms: percentile(&upload_ms, 99.0),
        notified_p50_ms: percentile(&latencies, 50.0),
        notified_p99_ms: percentile(&latencies, 99.0),
        notified_max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        failed_items: items.iter().filter(|i| i["status"] == "failed").count(),
        engine_cpu_ms_per_item: match (cpu_before, cpu_after) {
            (Some(b), Some(a)) if !ids.is_empty() => Some((a - b) / ids.len() as f64),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers),
            None,
            "a date falls back to the default"
        );
    }

    #[tokio::test]
    async fn senders_wait_out_a_retry_after() {
        let until = std::sync::Mutex::new(Instant::now() + Duration::from_millis(50));
        let started = Instant::now();
        assert!(wait_out(&until).await);
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(!wait_out(&until).await, "past: no wait");
    }
}
