//! `make bench-queries`: what finding items costs as the table grows.
//!
//! - Embedded: the SQLite table filled with 1,000 and then 100,000 items (bulk insert), and the
//!   latency of a first page, the 50th page (from its cursor) and a status query, each beside
//!   its peer in the same run: the same page made the old way, by reading every item and sorting
//!   in memory. Flat across the two sizes is the goal.
//! - DynamoDB Local (when the stand-ins run): 10,000 items, and the read capacity one page of the
//!   adapter's index `Query` consumes against a full `Scan` of the table (`ReturnConsumedCapacity`).
//!
//! Items look like real ones (renditions, EXIF, a placeholder, history), so a page weighs what it
//! would. Prints a table.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_adapters::testing::{create_table, endpoints, sdk, unique};
use aws_adapters::DynamoTable;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use embedded_adapters::sqlite::{Database, SqliteTable};
use futures::StreamExt;
use state::{
    HistoryEntry, ImageId, Item, ItemTable, NewUpload, Page, Position, Query, Selection, Status,
};

/// Items per page in the embedded figures: 50 pages of it is exactly the 1,000-item table.
const PAGE: usize = 20;
/// The API's default page (`GET /items`), for the DynamoDB figures.
const API_PAGE: usize = 50;
const BASE_MS: i64 = 1_750_000_000_000;

/// The `k`-th upload of a steady 1,000 a second, whatever status most items end at: 5% failed,
/// 2% still processing, the rest notified. Every tenth shares its millisecond with the one before.
fn item(k: usize) -> Item {
    let id = ImageId::generate();
    let created_at = BASE_MS + k as i64 - (k % 10 == 9) as i64;
    let status = match k % 100 {
        7 | 27 | 47 | 67 | 87 => Status::Failed,
        13 | 63 => Status::Processed,
        _ => Status::Notified,
    };
    let mut item = Item::uploaded(
        NewUpload {
            id,
            bucket_name: "images".into(),
            object_key: format!("uploads/{id}.jpg"),
            content_type: "image/jpeg".into(),
            size: 2_400_000 + k as u64 % 100_000,
        },
        created_at,
    );
    item.status = status;
    item.updated_at = created_at + 900;
    item.history = vec![HistoryEntry {
        status: Status::Uploaded,
        at: created_at,
    }];
    if status == Status::Failed {
        item.error = Some("not a decodable image: JPEG ends before its last scan".into());
        item.history.push(HistoryEntry {
            status,
            at: created_at + 400,
        });
        return item;
    }
    item.width = Some(4032);
    item.height = Some(3024);
    item.format = Some("jpeg".into());
    item.renditions = Some(BTreeMap::from(
        ["thumbnail.jpg", "mobile.jpg", "avatar.png"]
            .map(|r| (r[..r.len() - 4].to_owned(), format!("processed/{id}/{r}"))),
    ));
    item.exif = Some(BTreeMap::from(
        [
            ("make", "Apple"),
            ("model", "iPhone 13"),
            ("taken_at", "2025:06:01 12:00:00"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    ));
    item.placeholder = Some("1QcSHQRnh493V4dIh4eXh1h4kJUI".into());
    item.history.push(HistoryEntry {
        status: Status::Processed,
        at: created_at + 700,
    });
    if status == Status::Notified {
        item.message_id = Some(format!("{id}-message"));
        item.notified_at = Some(created_at + 900);
        item.history.push(HistoryEntry {
            status,
            at: created_at + 900,
        });
    }
    item
}

/// The median of `runs` timings of `f`.
async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f().await;
        times.push(start.elapsed());
    }
    times.sort();
    times[runs / 2]
}

/// The page the old `GET /items` made: every item read and sorted in memory.
fn page_by_reading_everything(db: &Path, q: &Query) -> Page {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT doc FROM items").unwrap();
    let items: Vec<Item> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|doc| serde_json::from_str(&doc.unwrap()).unwrap())
        .collect();
    state::query::page_of(items, q)
}

/// The position the 49th page ends at: where the 50th starts.
async fn cursor_of_page_50(table: &dyn ItemTable, selection: Selection, limit: usize) -> Position {
    let mut q = Query::first(selection, limit);
    for page in 1..50 {
        let next = table.query(&q).await.unwrap().next;
        q.after = Some(next.unwrap_or_else(|| panic!("page {page} is the last")));
    }
    q.after.unwrap()
}

struct Embedded {
    items: usize,
    fill: Duration,
    first: Duration,
    fiftieth: Duration,
    failed: Duration,
    old_first: Duration,
    old_failed: Duration,
}

async fn embedded(n: usize) -> Embedded {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.db");
    let table = SqliteTable::new(Database::open(&path).unwrap());
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        table
            .insert_many(chunk.iter().map(|&k| item(k)).collect())
            .await
            .unwrap();
    }
    let fill = start.elapsed();
    let runs = 200;
    let all = Query::first(Selection::All, PAGE);
    let first = median(runs, || async {
        assert_eq!(table.query(&all).await.unwrap().items.len(), PAGE);
    })
    .await;
    let at = cursor_of_page_50(&table, Selection::All, PAGE).await;
    let fiftieth_q = Query {
        after: Some(at),
        ..all
    };
    let fiftieth = median(runs, || async {
        assert_eq!(table.query(&fiftieth_q).await.unwrap().items.len(), PAGE);
    })
    .await;
    let failed_q = Query::first(Selection::Status(Status::Failed), PAGE);
    let failed = median(runs, || async {
        let page = table.query(&failed_q).await.unwrap();
        assert!(page.items.iter().all(|i| i.status == Status::Failed));
        assert_eq!(page.items.len(), PAGE);
    })
    .await;
    // The peer: the same pages by reading everything (fewer runs: it is slow at size).
    let old_runs = if n > 10_000 { 5 } else { 51 };
    let expected = table.query(&all).await.unwrap();
    let old_first = median(old_runs, || async {
        assert_eq!(page_by_reading_everything(&path, &all), expected);
    })
    .await;
    let expected = table.query(&failed_q).await.unwrap();
    let old_failed = median(old_runs, || async {
        assert_eq!(page_by_reading_everything(&path, &failed_q), expected);
    })
    .await;
    Embedded {
        items: n,
        fill,
        first,
        fiftieth,
        failed,
        old_first,
        old_failed,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(big: Duration, small: Duration) -> String {
    format!("{:.2}x", big.as_secs_f64() / small.as_secs_f64())
}

struct Capacity {
    what: &'static str,
    calls: u64,
    items: usize,
    units: f64,
}

async fn dynamodb(endpoint: &str, n: usize) -> Vec<Capacity> {
    let client = aws_sdk_dynamodb::Client::new(&sdk(endpoint).await);
    let name = unique("bench-queries");
    create_table(&client, &name).await;
    let table = DynamoTable::new(client.clone(), &name);
    let start = Instant::now();
    futures::stream::iter((0..n).map(item))
        .map(|i| {
            let table = &table;
            async move { table.insert(&i).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "DynamoDB Local: {n} items put in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    let mut measure = |what, before: aws_adapters::Reads, table: &DynamoTable, items| {
        let after = table.reads();
        out.push(Capacity {
            what,
            calls: after.queries - before.queries,
            items,
            units: after.capacity_units - before.capacity_units,
        });
    };
    let all = Query::first(Selection::All, API_PAGE);
    let before = table.reads();
    let page = table.query(&all).await.unwrap();
    measure(
        "first page, all (Query ByFeed)",
        before,
        &table,
        page.items.len(),
    );
    let at = cursor_of_page_50(&table, Selection::All, API_PAGE).await;
    let before = table.reads();
    let page = table
        .query(&Query {
            after: Some(at),
            ..all
        })
        .await
        .unwrap();
    measure(
        "page 50, all (Query ByFeed)",
        before,
        &table,
        page.items.len(),
    );
    let before = table.reads();
    let page = table
        .query(&Query::first(Selection::Status(Status::Failed), API_PAGE))
        .await
        .unwrap();
    measure(
        "first page, failed (Query ByStatus)",
        before,
        &table,
        page.items.len(),
    );

    for (what, consistent) in [
        ("full Scan, eventually consistent", false),
        ("full Scan, strongly consistent", true),
    ] {
        let (mut calls, mut items, mut units) = (0, 0, 0.0);
        let mut start = None;
        loop {
            let resp = client
                .scan()
                .table_name(&name)
                .consistent_read(consistent)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            calls += 1;
            items += resp.items().len();
            units += resp
                .consumed_capacity()
                .and_then(|c| c.capacity_units())
                .unwrap_or(f64::NAN);
            start = resp.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        out.push(Capacity {
            what,
            calls,
            items,
            units,
        });
    }
    client
        .delete_table()
        .table_name(&name)
        .send()
        .await
        .unwrap();
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<usize> = (0..1000)
        .map(|k| serde_json::to_string(&item(k)).unwrap().len())
        .collect();
    println!(
        "items as JSON: {} bytes on average, {} at most",
        sizes.iter().sum::<usize>() / sizes.len(),
        sizes.iter().max().unwrap()
    );
    let small = embedded(1_000).await;
    let large = embedded(100_000).await;
    println!("Embedded (SQLite), page of {PAGE}, median of 200 runs (the old way: 51 and 5)");
    println!(
        "filled {} items in {}, {} items in {}",
        small.items,
        ms(small.fill),
        large.items,
        ms(large.fill)
    );
    println!(
        "| query | {} items | {} items | ratio |",
        small.items, large.items
    );
    println!("| --- | ---: | ---: | ---: |");
    for (what, a, b) in [
        ("first page, all", small.first, large.first),
        (
            "page 50, all (from its cursor)",
            small.fiftieth,
            large.fiftieth,
        ),
        ("first page, status=failed", small.failed, large.failed),
        (
            "first page, all, the old way (read all, sort)",
            small.old_first,
            large.old_first,
        ),
        (
            "first page, failed, the old way",
            small.old_failed,
            large.old_failed,
        ),
    ] {
        println!("| {what} | {} | {} | {} |", ms(a), ms(b), ratio(b, a));
    }
    println!(
        "at {} items the index page is {} faster than the old way",
        large.items,
        ratio(large.old_first, large.first)
    );

    let n = 10_000;
    match endpoints() {
        None => println!("\nDynamoDB Local: skipped (the stand-ins are not running: make bench-queries starts them)"),
        Some((ddb, _)) => {
            let rows = dynamodb(&ddb, n).await;
            println!("\nDynamoDB Local, {n} items, page of {API_PAGE} (ReturnConsumedCapacity TOTAL)");
            println!("| read | calls | items | read capacity units |");
            println!("| --- | ---: | ---: | ---: |");
            for r in &rows {
                println!("| {} | {} | {} | {:.1} |", r.what, r.calls, r.items, r.units);
            }
            let page = rows[0].units;
            let scan = rows[3].units;
            println!("a full Scan costs {:.0}x one page", scan / page);
        }
    }
}
