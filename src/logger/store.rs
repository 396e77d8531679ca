//! The in-memory event store: a `Vec` in creation order plus a `HashMap` index by id, both
//! under one `RwLock`.
//!
//! The index makes a lookup by id O(1) at any size; the `Vec` keeps creation order for listing.
//! Events are never removed except to undo an insert whose notification hand-off failed, which
//! happens under the same write lock (see [`Store::insert_with`]), so indices never shift.
//! Callers get clones: no lock is held while a response is serialised or written.
//!
//! Every event has a *version* beside it (not in its JSON): [`INITIAL_VERSION`] when stored,
//! one more on every update. The API makes its `ETag` of it, and conditional updates
//! ([`Store::update_if`], [`Store::mark_processed_if_unchanged`]) compare it under the same
//! write lock that applies the update, so no other update can slip in between.
//!
//! With `DATA_DIR` the store is the working set of `logger::storage`: loaded at start
//! ([`Store::from_loaded`]) and changed only by its writer thread, after each commit
//! ([`Store::apply`]).

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

impl ListQuery {
    fn matches(&self, event: &Event) -> bool {
        self.user_id.as_ref().is_none_or(|u| &event.user_id == u)
            && self.status.as_ref().is_none_or(|s| &event.status == s)
    }
}

/// Without filters, the page is a slice of the `Vec`: its range among `len` events.
fn unfiltered_page(query: &ListQuery, len: usize) -> Option<std::ops::Range<usize>> {
    if query.user_id.is_some() || query.status.is_some() {
        return None;
    }
    let start = query.offset.min(len);
    let end = start
        .saturating_add(query.limit.unwrap_or(usize::MAX))
        .min(len);
    Some(start..end)
}

/// How big a page of events is, before it is copied: what an answer's size is bounded by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageSize {
    pub events: usize,
    /// The bytes of the events' strings (`user_id`, `description`, `status`), unescaped.
    pub text_bytes: usize,
}

impl PageSize {
    /// The size of `events`.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> PageSize {
        let mut size = PageSize::default();
        for event in events {
            size.events += 1;
            size.text_bytes += event.user_id.len() + event.description.len() + event.status.len();
        }
        size
    }
}

/// A cheaply clonable handle to the shared store.
#[derive(Debug, Clone, Default)]
pub struct Store {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<Event>,
    /// `versions[i]` is the version of `events[i]`.
    versions: Vec<u64>,
    index: HashMap<Uuid, usize>,
}

/// The version of an event just stored (the one handed to the notifier).
pub const INITIAL_VERSION: u64 = 1;

/// An event as stored, with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub event: Event,
    pub version: u64,
}

/// What a conditional update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional {
    /// Applied; the event as it is now.
    Updated(Versioned),
    /// No such event.
    NotFound,
    /// The precondition did not hold for the current version: nothing changed.
    Failed { current: u64 },
}

/// A committed change, applied by [`Store::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new event, at the given position (the end of the `Vec`).
    Insert(usize, Event),
    /// The event at the position, as it is now.
    Set(usize, Versioned),
}

/// A page of a listing, found but not copied ([`Store::find`]).
#[derive(Debug)]
pub struct FoundPage {
    positions: Positions,
    /// The events matching the filters, before paging.
    pub total: usize,
    pub size: PageSize,
}

/// Where a found page's events are in the store's `Vec`.
#[derive(Debug)]
enum Positions {
    /// Without filters: a slice.
    Slice(std::ops::Range<usize>),
    Listed(Vec<usize>),
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

    /// A store holding `events` (with their versions), in this order.
    pub fn from_loaded(events: Vec<(Event, u64)>) -> Store {
        let mut index = HashMap::with_capacity(events.len());
        let (events, versions): (Vec<Event>, Vec<u64>) = events.into_iter().unzip();
        for (position, event) in events.iter().enumerate() {
            index.insert(event.event_id, position);
        }
        Store {
            inner: Arc::new(RwLock::new(Inner {
                events,
                versions,
                index,
            })),
        }
    }

    /// Where the event `id` is, and its state.
    pub fn locate(&self, id: &Uuid) -> Option<(usize, Versioned)> {
        let inner = self.read();
        inner.index.get(id).map(|&i| {
            let v = Versioned {
                event: inner.events[i].clone(),
                version: inner.versions[i],
            };
            (i, v)
        })
    }

    /// Applies committed changes in order, under one write lock. An insert whose position is
    /// not the end, or a set of a position not stored, is a bug of the caller and skipped.
    pub fn apply(&self, changes: Vec<Change>) {
        let mut inner = self.write();
        for change in changes {
            match change {
                Change::Insert(position, event) if position == inner.events.len() => {
                    inner.index.insert(event.event_id, position);
                    inner.events.push(event);
                    inner.versions.push(INITIAL_VERSION);
                }
                Change::Set(position, v) if position < inner.events.len() => {
                    inner.events[position] = v.event;
                    inner.versions[position] = v.version;
                }
                change => log::error!("change not applied, it does not fit the store: {change:?}"),
            }
        }
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
        inner.versions.push(INITIAL_VERSION);
        let stored = &inner.events[position];
        match hand_off(stored) {
            Ok(()) => Ok(stored.clone()),
            Err(e) => {
                inner.versions.pop();
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

    /// The event `id` with its version.
    pub fn get_versioned(&self, id: &Uuid) -> Option<Versioned> {
        let inner = self.read();
        inner.index.get(id).map(|&i| Versioned {
            event: inner.events[i].clone(),
            version: inner.versions[i],
        })
    }

    /// Applies `update` to the event `id`; `None` if there is no such event.
    pub fn update(&self, id: &Uuid, update: EventUpdate) -> Option<Event> {
        match self.update_if(id, update, |_| true) {
            Conditional::Updated(v) => Some(v.event),
            _ => None,
        }
    }

    /// Applies `update` to the event `id` if `precondition` holds for its current version,
    /// checked and applied under one write lock. The version goes up by one unless the update
    /// is empty (`{}`).
    pub fn update_if(
        &self,
        id: &Uuid,
        update: EventUpdate,
        precondition: impl FnOnce(u64) -> bool,
    ) -> Conditional {
        let mut inner = self.write();
        let Some(&position) = inner.index.get(id) else {
            return Conditional::NotFound;
        };
        let current = inner.versions[position];
        if !precondition(current) {
            return Conditional::Failed { current };
        }
        // `{}` changes nothing, so the version stays too.
        let changed = inner.events[position].apply(update);
        let version = current + u64::from(changed);
        inner.versions[position] = version;
        Conditional::Updated(Versioned {
            event: inner.events[position].clone(),
            version,
        })
    }

    /// Applies `update()` to each of `ids` that is stored and still at `version` (unchanged
    /// since it was read or queued), under one write lock; returns how many were updated.
    pub fn update_each_unchanged<'a>(
        &self,
        ids: impl IntoIterator<Item = (&'a Uuid, u64)>,
        update: impl Fn() -> EventUpdate,
    ) -> usize {
        let mut inner = self.write();
        let mut updated = 0;
        for (id, version) in ids {
            let Some(&position) = inner.index.get(id) else {
                continue;
            };
            if inner.versions[position] == version && inner.events[position].apply(update()) {
                inner.versions[position] += 1;
                updated += 1;
            }
        }
        updated
    }

    /// The events matching the query's filters, in creation order, paged.
    pub fn list(&self, query: &ListQuery) -> Page {
        self.copy(self.find(query))
    }

    /// The page [`Store::list`] would answer now, found in one pass but not copied: where
    /// its events are, how many match, and the page's size, so that a caller can decide
    /// whether to copy it at all ([`Store::copy`]).
    pub fn find(&self, query: &ListQuery) -> FoundPage {
        let inner = self.read();
        if let Some(range) = unfiltered_page(query, inner.events.len()) {
            return FoundPage {
                size: PageSize::of(&inner.events[range.clone()]),
                total: inner.events.len(),
                positions: Positions::Slice(range),
            };
        }
        let limit = query.limit.unwrap_or(usize::MAX);
        let mut total = 0;
        let mut positions = Vec::new();
        let matching = inner.events.iter().enumerate();
        for (position, _) in matching.filter(|(_, e)| query.matches(e)) {
            if total >= query.offset && positions.len() < limit {
                positions.push(position);
            }
            total += 1;
        }
        FoundPage {
            size: PageSize::of(positions.iter().map(|&p| &inner.events[p])),
            total,
            positions: Positions::Listed(positions),
        }
    }

    /// The events of a page [`Store::find`] found, as they are now (positions never shift:
    /// see the module's doc).
    pub fn copy(&self, page: FoundPage) -> Page {
        let inner = self.read();
        let events = match page.positions {
            Positions::Slice(range) => inner.events[range].to_vec(),
            Positions::Listed(positions) => {
                positions.iter().map(|&p| inner.events[p].clone()).collect()
            }
        };
        Page {
            total: page.total,
            events,
        }
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
    fn update_each_unchanged_skips_unknown_and_changed_events() {
        let store = Store::new();
        let a = insert(&store, event("a"));
        let b = insert(&store, event("b"));
        let c = insert(&store, event("c"));
        let d = insert(&store, event("d"));
        let cancelled = EventUpdate::parse(br#"{"status":"Cancelled"}"#).unwrap();
        let d = store.update(&d.event_id, cancelled).unwrap();
        let unknown = Uuid::nil();
        let updated = store.update_each_unchanged(
            [&a.event_id, &unknown, &c.event_id, &d.event_id].map(|id| (id, INITIAL_VERSION)),
            EventUpdate::processed,
        );
        assert_eq!(updated, 2);
        assert_eq!(store.get(&a.event_id).unwrap().status, STATUS_PROCESSED);
        assert_eq!(store.get(&b.event_id), Some(b));
        assert_eq!(store.get(&c.event_id).unwrap().status, STATUS_PROCESSED);
        assert_eq!(
            store.get(&d.event_id),
            Some(d),
            "changed since queued: kept"
        );
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn versions_start_at_one_and_count_updates_and_preconditions_guard_them() {
        let store = Store::new();
        let a = insert(&store, event("a"));
        assert_eq!(
            store.get_versioned(&a.event_id).unwrap().version,
            INITIAL_VERSION
        );
        let Conditional::Updated(v) =
            store.update_if(&a.event_id, EventUpdate::processed(), |v| v == 1)
        else {
            panic!("version 1 matches");
        };
        assert_eq!(v.version, 2);
        assert_eq!(
            store.update_if(&a.event_id, EventUpdate::processed(), |v| v == 1),
            Conditional::Failed { current: 2 }
        );
        assert_eq!(store.get_versioned(&a.event_id), Some(v));
        assert_eq!(
            store.update_if(&Uuid::nil(), EventUpdate::processed(), |_| true),
            Conditional::NotFound
        );
    }

    #[test]
    fn a_loaded_store_keeps_order_and_versions_and_applies_changes_in_order() {
        let (a, b) = (event("a"), event("b"));
        let store = Store::from_loaded(vec![(a.clone(), 3), (b.clone(), 1)]);
        assert_eq!(
            store.locate(&b.event_id).map(|(i, v)| (i, v.version)),
            Some((1, 1))
        );
        let c = event("c");
        let mut a2 = a.clone();
        a2.apply(EventUpdate::processed());
        let mut a3 = a2.clone();
        a3.apply(EventUpdate::parse(br#"{"status":"Cancelled"}"#).unwrap());
        store.apply(vec![
            Change::Insert(2, c.clone()),
            Change::Set(
                0,
                Versioned {
                    event: a2,
                    version: 4,
                },
            ),
            Change::Set(
                0,
                Versioned {
                    event: a3.clone(),
                    version: 5,
                },
            ),
            // Not where an insert can go, and no such position: both skipped.
            Change::Insert(7, event("x")),
            Change::Set(
                9,
                Versioned {
                    event: event("y"),
                    version: 2,
                },
            ),
        ]);
        let listed: Vec<Uuid> = store
            .list(&ListQuery::default())
            .events
            .iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(listed, vec![a.event_id, b.event_id, c.event_id]);
        assert_eq!(
            store.get_versioned(&a.event_id),
            Some(Versioned {
                event: a3,
                version: 5
            })
        );
        assert_eq!(
            store.get_versioned(&c.event_id).unwrap().version,
            INITIAL_VERSION
        );
    }

    #[test]
    fn find_counts_and_sizes_the_page_list_answers() {
        let store = Store::new();
        for user in ["a", "b", "a", "a", "b", "ccc"] {
            insert(&store, event(user));
        }
        let users = [None, Some("a"), Some("b"), Some("ccc"), Some("z")];
        for user_id in users {
            for offset in [0, 1, 2, 5, 9] {
                for limit in [None, Some(0), Some(1), Some(2), Some(usize::MAX)] {
                    let q = ListQuery {
                        user_id: user_id.map(str::to_owned),
                        status: None,
                        offset,
                        limit,
                    };
                    let found = store.find(&q);
                    let (total, size) = (found.total, found.size);
                    let page = store.copy(found);
                    assert_eq!(size, PageSize::of(&page.events), "{q:?}");
                    assert_eq!(total, page.total, "{q:?}");
                }
            }
        }
    }

    #[test]
    fn a_found_page_is_copied_as_it_is_at_the_copy() {
        let store = Store::new();
        let ids: Vec<Uuid> = ["a", "b", "a"]
            .iter()
            .map(|u| insert(&store, event(u)).event_id)
            .collect();
        let query = ListQuery {
            user_id: Some("a".into()),
            ..ListQuery::default()
        };
        let found = store.find(&query);
        store.update(&ids[2], EventUpdate::processed());
        insert(&store, event("a"));
        let page = store.copy(found);
        let listed: Vec<Uuid> = page.events.iter().map(|e| e.event_id).collect();
        assert_eq!(
            listed,
            [ids[0], ids[2]],
            "the events found, not those added since"
        );
        assert_eq!(page.total, 2);
        assert_eq!(page.events[1].status, STATUS_PROCESSED, "as it is now");
    }

    #[test]
    fn a_page_size_counts_the_events_and_the_bytes_of_their_strings() {
        let mut one = sample("ab", "cde");
        one.status = "f".into();
        let two = sample("g", "h");
        let size = PageSize::of([&one, &two]);
        let text = 2 + 3 + 1 + 1 + 1 + "NotProcessed".len();
        assert_eq!(
            size,
            PageSize {
                events: 2,
                text_bytes: text
            }
        );
        assert_eq!(PageSize::of(&[]), PageSize::default());
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
