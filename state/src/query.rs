//! Finding items: newest first, all of them, by status, or the stalled ones, a page at a time.
//! A page ends at a [`Position`] (the last item's `created_at` and id) and the next starts
//! strictly after it, so uploads that arrive between pages neither shift nor repeat what follows.

use std::cmp::Ordering;

use crate::{ImageId, Item, Status};

/// Which items a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    All,
    Status(Status),
    /// Items whose records a function gave up on (`stalled_at` set).
    Stalled,
}

/// A place in the newest-first order: the next page holds only items strictly older.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub created_at: i64,
    pub id: ImageId,
}

impl Position {
    pub fn of(item: &Item) -> Position {
        Position {
            created_at: item.created_at,
            id: item.id,
        }
    }

    /// Whether `item` comes after this position in the newest-first order.
    pub fn precedes(&self, item: &Item) -> bool {
        (item.created_at, item.id) < (self.created_at, self.id)
    }
}

/// One page's worth of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub selection: Selection,
    /// At least 1.
    pub limit: usize,
    pub after: Option<Position>,
}

impl Query {
    pub fn first(selection: Selection, limit: usize) -> Query {
        Query {
            selection,
            limit,
            after: None,
        }
    }

    /// Whether `item` belongs in this query's pages (not looking at the position).
    pub fn selects(&self, item: &Item) -> bool {
        match self.selection {
            Selection::All => true,
            Selection::Status(s) => item.status == s,
            Selection::Stalled => item.stalled_at.is_some(),
        }
    }
}

/// Items newest first, and where the next page starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Position>,
}

/// The listing order: newest `created_at` first, then the greater id.
pub fn newest_first(a: &Item, b: &Item) -> Ordering {
    (b.created_at, b.id).cmp(&(a.created_at, a.id))
}

/// A page from `candidates` (any order, any superset of the query's items): the reference a
/// store's own query is held to.
pub fn page_of(mut candidates: Vec<Item>, q: &Query) -> Page {
    candidates.retain(|i| q.selects(i) && q.after.is_none_or(|p| p.precedes(i)));
    candidates.sort_by(newest_first);
    let more = candidates.len() > q.limit;
    candidates.truncate(q.limit);
    let next = if more {
        candidates.last().map(Position::of)
    } else {
        None
    };
    Page {
        items: candidates,
        next,
    }
}
