//! The in-memory event store: a `Vec` in creation order plus a `HashMap` index by id, both
//! under one `RwLock`.
//!
//! The index makes a lookup by id O(1) at any size; the `Vec` keeps creation order for listing.
//! Events are never removed except to undo an insert whose notification hand-off failed, which
//! happens under the same write lock (see [`Store::insert_with`]), so indices never shift.
//! Callers get clones: no lock is held while a response is serialised or written.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use crate::shared::event::{Event, EventUpdate};

/// Which events a list asks for: exact-match filters, then paging. The API parses it from the
/// query string; the store only answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub user_id: Option<String>,
    pub status: Option<String>,
    pub offset: usize,
    pub limit: Option<usize>,
}

/// A cheaply clonable handle to the shared store.
#[derive(Debug, Clone, Default)]
pub struct Store {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<Event>,
    index: HashMap<Uuid, usize>,
}

/// One page of a listing, with the number of matches before paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub total: usize,
    pub events: Vec<Event>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    // A panic in another thread while it held the lock leaves the data consistent (every
    // mutation below is a single push/assignment), so poisoning is not a reason to fail.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `event` and, still under the write lock, calls `hand_off` with it. If `hand_off`
    /// fails the event is removed again before anyone can see it: stored and handed off
    /// together, or not at all. `hand_off` must not block (it is a channel send).
    pub fn insert_with<E>(
        &self,
        event: Event,
        hand_off: impl FnOnce(&Event) -> Result<(), E>,
    ) -> Result<Event, E> {
        let mut inner = self.write();
        let position = inner.events.len();
        inner.index.insert(event.event_id, position);
        inner.events.push(event);
        let stored = &inner.events[position];
        match hand_off(stored) {
            Ok(()) => Ok(stored.clone()),
            Err(e) => {
                if let Some(event) = inner.events.pop() {
                    inner.index.remove(&event.event_id);
                }
                Err(e)
            }
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<Event> {
        let inner = self.read();
        inner.index.get(id).map(|&i| inner.events[i].clone())
    }

    /// Applies `update` to the event `id`; `None` if there is no such event.
    pub fn update(&self, id: &Uuid, update: EventUpdate) -> Option<Event> {
        let mut inner = self.write();
        let position = *inner.index.get(id)?;
        let event = &mut inner.events[position];
        event.apply(update);
        Some(event.clone())
    }

    /// Applies `update()` to each of `ids` that is stored, under one write lock.
    pub fn update_each<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a Uuid>,
        update: impl Fn() -> EventUpdate,
    ) {
        let mut inner = self.write();
        for id in ids {
            if let Some(&position) = inner.index.get(id) {
                inner.events[position].apply(update());
            }
        }
    }

    /// The events matching the query's filters, in creation order, paged.
    pub fn list(&self, query: &ListQuery) -> Page {
        let inner = self.read();
        let matches = |e: &&Event| {
            query.user_id.as_ref().is_none_or(|u| &e.user_id == u)
                && query.status.as_ref().is_none_or(|s| &e.status == s)
        };
        let limit = query.limit.unwrap_or(usize::MAX);
        if query.user_id.is_none() && query.status.is_none() {
            // No filter: the page is a slice, no need to look at every event.
            let total = inner.events.len();
            let start = query.offset.min(total);
            let end = start.saturating_add(limit).min(total);
            return Page {
                total,
                events: inner.events[start..end].to_vec(),
            };
        }
        let mut total = 0;
        let mut events = Vec::new();
        for event in inner.events.iter().filter(matches) {
            if total >= query.offset && events.len() < limit {
                events.push(event.clone());
            }
            total += 1;
        }
        Page { total, events }
    }

    pub fn len(&self) -> usize {
        self.read().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::event::{STATUS_PROCESSED, sample};

    fn event(user: &str) -> Event {
        sample(user, "d")
    }

    fn insert(store: &Store, e: Event) -> Event {
        store.insert_with(e, |_| Ok::<(), ()>(())).unwrap()
    }

    #[test]
    fn insert_then_get_by_id() {
        let store = Store::new();
        let a = insert(&store, event("a"));
        let b = insert(&store, event("b"));
        assert_eq!(store.get(&a.event_id), Some(a));
        assert_eq!(store.get(&b.event_id), Some(b));
        assert_eq!(store.get(&Uuid::nil()), None);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn failed_hand_off_leaves_nothing_behind() {
        let store = Store::new();
        let kept = insert(&store, event("a"));
        let rejected = event("b");
        let id = rejected.event_id;
        assert_eq!(store.insert_with(rejected, |_| Err("full")), Err("full"));
        assert_eq!(store.get(&id), None);
        assert_eq!(store.len(), 1);
        let next = insert(&store, event("c"));
        assert_eq!(store.get(&next.event_id), Some(next));
        assert_eq!(store.get(&kept.event_id), Some(kept));
    }

    #[test]
    fn update_changes_the_stored_event() {
        let store = Store::new();
        let a = insert(&store, event("a"));
        let updated = store.update(&a.event_id, EventUpdate::processed()).unwrap();
        assert_eq!(updated.status, STATUS_PROCESSED);
        assert_eq!(store.get(&a.event_id), Some(updated));
        assert_eq!(store.update(&Uuid::nil(), EventUpdate::processed()), None);
    }

    #[test]
    fn update_each_changes_every_stored_one_and_skips_unknown_ids() {
        let store = Store::new();
        let a = insert(&store, event("a"));
        let b = insert(&store, event("b"));
        let c = insert(&store, event("c"));
        let unknown = Uuid::nil();
        store.update_each([&a.event_id, &unknown, &c.event_id], EventUpdate::processed);
        assert_eq!(store.get(&a.event_id).unwrap().status, STATUS_PROCESSED);
        assert_eq!(store.get(&b.event_id), Some(b));
        assert_eq!(store.get(&c.event_id).unwrap().status, STATUS_PROCESSED);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn list_filters_pages_and_counts_before_paging() {
        let store = Store::new();
        let ids: Vec<Uuid> = ["a", "b", "a", "a", "b"]
            .iter()
            .map(|u| insert(&store, event(u)).event_id)
            .collect();
        store.update(&ids[2], EventUpdate::processed());

        let all = store.list(&ListQuery::default());
        assert_eq!(all.total, 5);
        let listed: Vec<Uuid> = all.events.iter().map(|e| e.event_id).collect();
        assert_eq!(listed, ids, "creation order");

        let q = ListQuery {
            user_id: Some("a".into()),
            offset: 1,
            limit: Some(1),
            ..ListQuery::default()
        };
        let page = store.list(&q);
        assert_eq!(page.total, 3);
        assert_eq!(page.events[0].event_id, ids[2]);
        assert_eq!(page.events.len(), 1);

        let q = ListQuery {
            status: Some(STATUS_PROCESSED.into()),
            ..ListQuery::default()
        };
        assert_eq!(store.list(&q).total, 1);

        let q = ListQuery {
            offset: 4,
            limit: Some(usize::MAX),
            ..ListQuery::default()
        };
        assert_eq!(store.list(&q).events.len(), 1);
        let q = ListQuery {
            offset: usize::MAX,
            ..ListQuery::default()
        };
        assert_eq!(
            store.list(&q),
            Page {
                total: 5,
                events: vec![]
            }
        );
    }
}
