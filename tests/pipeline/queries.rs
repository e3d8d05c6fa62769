//! The two backends' item queries side by side: the same items, inserted through the real
//! adapters into SQLite and into DynamoDB Local (the table made from template.yaml, its GSIs
//! included), give the same pages, page for page, for every selection and page size.

use std::collections::HashSet;

use aws_adapters::testing::{create_table, endpoints, sdk, unique};
use aws_adapters::DynamoTable;
use embedded_adapters::sqlite::{Database, SqliteTable};
use state::contract::{facts, new_item};
use state::{transition, ImageId, Item, ItemTable, Position, Query, Selection, Stall, Status};

/// Every page of `selection` at `limit`, following each page's `next`: the ids of each page, and
/// the positions the pages ended at.
async fn pages(
    table: &dyn ItemTable,
    selection: Selection,
    limit: usize,
) -> (Vec<Vec<ImageId>>, Vec<Position>) {
    let mut q = Query::first(selection, limit);
    let (mut pages, mut ends) = (Vec::new(), Vec::new());
    loop {
        let page = table.query(&q).await.unwrap();
        assert!(page.items.len() <= limit, "a page holds at most its limit");
        pages.push(page.items.iter().map(|i| i.id).collect());
        match page.next {
            Some(next) => {
                ends.push(next);
                q.after = Some(next);
            }
            None => return (pages, ends),
        }
        assert!(pages.len() <= 1000, "more than 1000 pages");
    }
}

/// Writes `items` into `table` and moves each to its status (`fate`), through the transitions
/// the functions use; every third processed one is also marked stalled.
async fn fill(table: &dyn ItemTable, items: &[Item], fate: &[Status]) {
    for item in items {
        table.insert(item).await.unwrap();
    }
    for (k, (item, status)) in items.iter().zip(fate).enumerate() {
        match status {
            Status::Uploaded => {}
            Status::Processed => {
                transition::processed(table, item.id, facts())
                    .await
                    .unwrap();
                if k % 3 == 0 {
                    let stall = Stall::new("notice", "retries exhausted", item.created_at);
                    assert!(table
                        .mark_stalled(item.id, Status::Processed, &stall)
                        .await
                        .unwrap());
                }
            }
            Status::Notified => {
                transition::processed(table, item.id, facts())
                    .await
                    .unwrap();
                transition::notified(table, item.id, format!("m-{k}"))
                    .await
                    .unwrap();
            }
            Status::Failed => {
                transition::failed(table, item.id, Status::Uploaded, "truncated JPEG".into())
                    .await
                    .unwrap();
            }
            Status::Pending => unreachable!("items here start uploaded"),
        }
    }
}

#[tokio::test]
async fn sqlite_and_dynamodb_local_give_the_same_pages() {
    let Some((ddb_endpoint, _)) = endpoints() else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk(&ddb_endpoint).await);
    let name = unique("pages");
    create_table(&client, &name).await;
    let dynamo = DynamoTable::new(client, &name);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteTable::new(Database::open(&dir.path().join("pipeline.db")).unwrap());

    // 70 items over 30 distinct instants: most share their `created_at` with others, so the
    // order within a tie (by id) and cursors that fall inside a tie are exercised; with random
    // ids every one of the 16 DynamoDB shards holds a few.
    let base = 1_700_000_000_000;
    let fates = [
        Status::Notified,
        Status::Processed,
        Status::Failed,
        Status::Uploaded,
        Status::Notified,
    ];
    let mut items = Vec::new();
    let mut fate = Vec::new();
    for k in 0..70i64 {
        let mut item = new_item();
        item.created_at = base + (k * 7919) % 30 * 1000;
        item.updated_at = item.created_at;
        item.history[0].at = item.created_at;
        items.push(item);
        fate.push(fates[(k % 5) as usize]);
    }
    fill(&sqlite, &items, &fate).await;
    fill(&dynamo, &items, &fate).await;

    // What each selection must hold: its items, newest first, ties by the greater id first.
    let expected = |selection: Selection| -> Vec<ImageId> {
        let mut chosen: Vec<(i64, ImageId)> = items
            .iter()
            .zip(&fate)
            .enumerate()
            .filter(|(k, (_, s))| match selection {
                Selection::All => true,
                Selection::Status(want) => **s == want,
                Selection::Stalled => **s == Status::Processed && k % 3 == 0,
            })
            .map(|(_, (i, _))| (i.created_at, i.id))
            .collect();
        chosen.sort_by(|a, b| b.cmp(a));
        chosen.into_iter().map(|(_, id)| id).collect()
    };

    let selections = [Selection::All, Selection::Stalled]
        .into_iter()
        .chain(Status::ALL.map(Selection::Status));
    for selection in selections {
        let want = expected(selection);
        for limit in [1, 2, 7, 16, 17, 50, 100] {
            let (from_sqlite, sqlite_ends) = pages(&sqlite, selection, limit).await;
            let (from_dynamo, dynamo_ends) = pages(&dynamo, selection, limit).await;
            assert_eq!(
                from_sqlite, from_dynamo,
                "{selection:?}, limit {limit}: the same pages"
            );
            assert_eq!(sqlite_ends, dynamo_ends, "{selection:?}, limit {limit}");
            let ids: Vec<ImageId> = from_sqlite.into_iter().flatten().collect();
            assert_eq!(
                ids, want,
                "{selection:?}, limit {limit}: complete, newest first"
            );
            assert_eq!(
                ids.iter().collect::<HashSet<_>>().len(),
                ids.len(),
                "no item twice"
            );
            // Every page but the last is full, and the last is not empty (unless all are).
            let page_count = want.len().div_ceil(limit).max(1);
            assert_eq!(
                sqlite_ends.len() + 1,
                page_count,
                "{selection:?}, limit {limit}"
            );
        }
    }
    assert_eq!(expected(Selection::All).len(), 70);
    assert!(!expected(Selection::Stalled).is_empty());

    // New uploads arriving between pages, some tied with the cursor's own instant, leave both
    // backends' remaining pages equal and without what was already shown.
    let q = Query::first(Selection::All, 20);
    let first_sqlite = sqlite.query(&q).await.unwrap();
    let first_dynamo = dynamo.query(&q).await.unwrap();
    let ids = |items: &[Item]| items.iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(&first_sqlite.items), ids(&first_dynamo.items));
    let cursor = first_sqlite.next.expect("more than one page");
    assert_eq!(Some(cursor), first_dynamo.next);
    let mut late = Vec::new();
    for at in [base + 100_000, cursor.created_at, base - 1] {
        let mut item = new_item();
        item.created_at = at;
        item.history[0].at = at;
        late.push(item);
    }
    fill(&sqlite, &late, &[Status::Uploaded; 3]).await;
    fill(&dynamo, &late, &[Status::Uploaded; 3]).await;
    let mut rest_sqlite = Vec::new();
    let mut rest_dynamo = Vec::new();
    for (table, out) in [
        (&sqlite as &dyn ItemTable, &mut rest_sqlite),
        (&dynamo as &dyn ItemTable, &mut rest_dynamo),
    ] {
        let mut q = Query {
            after: Some(cursor),
            ..Query::first(Selection::All, 20)
        };
        loop {
            let page = table.query(&q).await.unwrap();
            out.extend(page.items.iter().map(|i| i.id));
            match page.next {
                Some(next) => q.after = Some(next),
                None => break,
            }
        }
    }
    assert_eq!(rest_sqlite, rest_dynamo);
    let shown: HashSet<ImageId> = ids(&first_sqlite.items).into_iter().collect();
    assert!(
        rest_sqlite.iter().all(|id| !shown.contains(id)),
        "no repeat"
    );
    let originals: Vec<ImageId> = rest_sqlite
        .iter()
        .copied()
        .filter(|id| items.iter().any(|i| i.id == *id))
        .collect();
    assert_eq!(originals, expected(Selection::All)[20..], "no gap");
    // The oldest late item sorts after every original, so both show it; the newest, before the
    // cursor, is shown by neither.
    assert_eq!(rest_sqlite.last(), Some(&late[2].id));
    assert!(!rest_sqlite.contains(&late[0].id));
}
