//! The [`Hub`]: topics, their subscribers, and [`Event`]s encoded once for all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Events waiting for one stream at most: a client that falls this far behind is dropped
/// (its stream ends with the retry hint, and it reconnects), so a slow or stalled client
/// never makes the server hold more than this for it.
pub(crate) const BUFFER: usize = 64;

/// An event for the streams of a topic: a name (what `hx-trigger="sse:NAME"` or
/// `addEventListener("NAME")` listens for) and optional text data.
///
/// ```
/// use burrow::live::Event;
///
/// let changed = Event::new("notes-changed");
/// let counted = Event::new("count").data("42");
/// # let _ = (changed, counted);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    name: String,
    data: String,
}

impl Event {
    /// An event named `name` (line breaks are removed: they would end the field).
    pub fn new(name: &str) -> Event {
        Event {
            name: name.chars().filter(|c| !matches!(c, '\r' | '\n')).collect(),
            data: String::new(),
        }
    }

    /// With `data` (any text; each line is sent as a `data:` line, and the browser joins
    /// them again with `\n`).
    pub fn data(mut self, data: impl Into<String>) -> Event {
        self.data = data.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.data
    }

    /// The event on the wire, with its `id:`.
    pub(crate) fn encode(&self, id: u64) -> Bytes {
        let mut out = String::with_capacity(self.name.len() + self.data.len() + 32);
        out.push_str("id: ");
        out.push_str(&id.to_string());
        if !self.name.is_empty() {
            out.push_str("\nevent: ");
            out.push_str(&self.name);
        }
        // Every event has a data line, an empty one too: the browser dispatches no event
        // without one.
        for line in self.data.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
            out.push_str("\ndata: ");
            out.push_str(line);
        }
        out.push_str("\n\n");
        Bytes::from(out)
    }
}

/// Topics and the event streams subscribed to them; cheap to clone (`ctx.live`, the `Hub`
/// extractor, [`Db::live`](crate::Db::live)).
///
/// A topic is any string; name them after what they are about, e.g. `notes:user:42`.
/// [`Hub::publish`] reaches the streams of this process at once and, on PostgreSQL, those
/// of every other server process on the database (`NOTIFY`); inside a write transaction,
/// publish with [`Conn::publish`](crate::db::Conn::publish) instead, which sends the event
/// only if the transaction commits.
#[derive(Clone, Default)]
pub struct Hub(Arc<Inner>);

#[derive(Default)]
struct Inner {
    topics: Mutex<HashMap<String, Vec<Subscriber>>>,
    /// Subscriber ids, and the `id:` of events (per process: a client reconnecting to
    /// another process presents an id it does not know, which is all it is used for).
    next_id: AtomicU64,
    /// Sends events to the other server processes on the database (PostgreSQL), once the
    /// listener runs ([`super::postgres`]).
    remote: OnceLock<mpsc::Sender<String>>,
}

/// One stream's place in a topic.
struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    lagged: Arc<AtomicBool>,
}

impl Hub {
    /// Sends `event` to every stream subscribed to `topic`, in this process and, on
    /// PostgreSQL, in every other server process on the database. Returns how many
    /// streams of this process it reached.
    pub fn publish(&self, topic: &str, event: Event) -> usize {
        if let Some(remote) = self.0.remote.get() {
            match super::postgres::payload(topic, &event) {
                Ok(payload) => {
                    if remote.try_send(payload).is_err() {
                        tracing::warn!(
                            topic,
                            "live event not sent to other server processes: their queue is full"
                        );
                    }
                }
                Err(e) => tracing::warn!(topic, "{e}"),
            }
        }
        self.deliver(topic, &event)
    }

    /// How many streams of this process are subscribed to `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.0.topics.lock().expect("hub poisoned").get(topic).map_or(0, Vec::len)
    }

    /// Sends `event` to this process's streams of `topic`. A stream whose buffer is full
    /// is marked lagged (its stream ends) instead of being waited for.
    pub(crate) fn deliver(&self, topic: &str, event: &Event) -> usize {
        let topics = self.0.topics.lock().expect("hub poisoned");
        let Some(subscribers) = topics.get(topic) else { return 0 };
        let frame = event.encode(self.0.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let mut reached = 0;
        for subscriber in subscribers {
            match subscriber.tx.try_send(frame.clone()) {
                Ok(()) => reached += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.lagged.store(true, Ordering::Relaxed)
                }
                // Its stream is ending; the subscription removes itself when dropped.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        reached
    }

    /// A mailbox for the events of `topics`.
    pub(crate) fn subscribe(&self, topics: Vec<String>) -> Subscription {
        let (tx, rx) = mpsc::channel(BUFFER);
        let lagged = Arc::new(AtomicBool::new(false));
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let mut map = self.0.topics.lock().expect("hub poisoned");
        for topic in &topics {
            let subscriber = Subscriber { id, tx: tx.clone(), lagged: lagged.clone() };
            map.entry(topic.clone()).or_default().push(subscriber);
        }
        drop(map);
        Subscription { hub: self.clone(), id, topics, rx, lagged }
    }

    /// Where [`Hub::publish`] sends events for the other processes (set once).
    pub(crate) fn set_remote(&self, remote: mpsc::Sender<String>) {
        let _ = self.0.remote.set(remote);
    }

    /// The id of the last event delivered (what a new stream starts from).
    pub(crate) fn last_id(&self) -> u64 {
        self.0.next_id.load(Ordering::Relaxed)
    }

    pub(crate) fn has_remote(&self) -> bool {
        self.0.remote.get().is_some()
    }
}

/// A stream's subscription: its mailbox, and whether it fell behind. Leaves its topics
/// when dropped.
pub(crate) struct Subscription {
    hub: Hub,
    id: u64,
    topics: Vec<String>,
    pub(crate) rx: mpsc::Receiver<Bytes>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// Events were dropped for this subscriber: its buffer was full.
    pub(crate) fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self.hub.0.topics.lock().expect("hub poisoned");
        for topic in &self.topics {
            if let Some(subscribers) = map.get_mut(topic) {
                subscribers.retain(|s| s.id != self.id);
                if subscribers.is_empty() {
                    map.remove(topic);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_encode_each_data_line_and_never_a_line_break_in_the_name() {
        let event = Event::new("a\r\nb").data("one\ntwo\r\nthree\rfour");
        assert_eq!(
            &event.encode(7)[..],
            b"id: 7\nevent: ab\ndata: one\ndata: two\ndata: three\ndata: four\n\n"
        );
        assert_eq!(&Event::new("ping").encode(1)[..], b"id: 1\nevent: ping\ndata: \n\n");
    }

    #[tokio::test]
    async fn a_full_buffer_marks_the_subscriber_lagged_and_dropping_leaves_the_topics() {
        let hub = Hub::default();
        let mut sub = hub.subscribe(vec!["a".into(), "b".into()]);
        assert_eq!((hub.subscribers("a"), hub.subscribers("b")), (1, 1));
        for _ in 0..BUFFER {
            assert_eq!(hub.deliver("a", &Event::new("x")), 1);
        }
        assert!(!sub.lagged());
        assert_eq!(hub.deliver("b", &Event::new("y")), 0);
        assert!(sub.lagged());
        assert!(sub.rx.recv().await.is_some());
        drop(sub);
        assert_eq!((hub.subscribers("a"), hub.subscribers("b")), (0, 0));
        assert_eq!(hub.deliver("a", &Event::new("x")), 0);
    }
}
