//! Live events between server processes on one PostgreSQL database: each publishes with
//! `NOTIFY` on [`CHANNEL`] and `LISTEN`s on a connection of its own, delivering what the
//! others published to its own streams. An event carries its process's origin, so a
//! process skips its own (it delivered them itself, at once).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Event, Hub};
use crate::db::{Db, Engine};
use crate::lifecycle::Lifecycle;

/// The notification channel every Burrow server on a database shares.
pub(crate) const CHANNEL: &str = "burrow_live";
/// How an event is sent (the channel and the payload as parameters).
pub(crate) const NOTIFY_SQL: &str = "SELECT pg_notify(?, ?)";
/// PostgreSQL refuses a payload of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;
/// Events waiting to be sent by [`Hub::publish`]; past this they are dropped (logged).
const QUEUE: usize = 4096;
/// How long the listener waits before connecting again, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// An event as a notification's payload.
#[derive(Serialize, Deserialize)]
struct Remote<'a> {
    /// The publishing process ([`origin`]).
    #[serde(borrow)]
    o: Cow<'a, str>,
    #[serde(borrow)]
    t: Cow<'a, str>,
    #[serde(borrow)]
    n: Cow<'a, str>,
    #[serde(borrow)]
    d: Cow<'a, str>,
}

/// This process, among those on the database (random, so a successor differs from its
/// predecessor).
fn origin() -> &'static str {
    static ORIGIN: OnceLock<String> = OnceLock::new();
    ORIGIN.get_or_init(|| crate::random::hex(8))
}

/// The payload that carries `event` to the other processes; an error (to log or return)
/// when it is too large for a notification.
pub(crate) fn payload(topic: &str, event: &Event) -> Result<String, String> {
    let remote = Remote {
        o: origin().into(),
        t: topic.into(),
        n: event.name().into(),
        d: event.text().into(),
    };
    let payload = serde_json::to_string(&remote).map_err(|e| e.to_string())?;
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "live event '{}' for topic '{topic}' is {} bytes, over PostgreSQL's NOTIFY limit of \
             {MAX_PAYLOAD}: it cannot reach other server processes (publish an id, and let \
             clients fetch the rest)",
            event.name(),
            payload.len()
        ));
    }
    Ok(payload)
}

/// The topic and event of another process's payload; `None` for this process's own, and
/// for anything that is not an event.
fn parse(payload: &str) -> Option<(String, Event)> {
    let remote: Remote = serde_json::from_str(payload).ok()?;
    (remote.o != origin()).then(|| (remote.t.into_owned(), Event::new(&remote.n).data(remote.d)))
}

/// On PostgreSQL: sends what [`Hub::publish`] publishes to the other processes, and
/// delivers theirs here, until the process stops. Nothing on SQLite.
pub(crate) fn start_listener(db: &Db, lifecycle: &Lifecycle) {
    if db.engine() != Engine::Postgres || db.live().has_remote() {
        return;
    }
    let hub = db.live().clone();
    let (tx, rx) = mpsc::channel(QUEUE);
    hub.set_remote(tx);
    tokio::spawn(send(db.clone(), rx));
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let (stop, lifecycle) = (stop.clone(), lifecycle.clone());
        async move {
            lifecycle.stopping().await;
            stop.store(true, Ordering::Relaxed);
        }
    });
    let db = db.clone();
    let spawned = std::thread::Builder::new()
        .name("burrow-live-listen".into())
        .spawn(move || listen(&db, &hub, &stop));
    if let Err(e) = spawned {
        tracing::warn!(
            "cannot start the live-event listener ({e}): events of other server processes will not reach this one's streams"
        );
    }
}

/// Sends queued payloads, a batch per pooled connection.
async fn send(db: Db, mut rx: mpsc::Receiver<String>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 64 {
            match rx.try_recv() {
                Ok(payload) => batch.push(payload),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let sent = db
            .read(move |c| {
                for payload in &batch {
                    c.execute(NOTIFY_SQL, &[CHANNEL.into(), payload.into()])?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(events = n, "live events not sent to other server processes: {e}");
        }
    }
}

/// The listener thread: connects, listens, and connects again (backing off) when the
/// connection fails, e.g. while the database restarts.
fn listen(db: &Db, hub: &Hub, stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(250);
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let mut listening = || {
            if failing {
                tracing::info!("live events: listening to other server processes again");
            }
            failing = false;
            backoff = Duration::from_millis(250);
        };
        let mut on = |payload: &str| {
            if let Some((topic, event)) = parse(payload) {
                hub.deliver(&topic, &event);
            }
        };
        match db.listen_blocking(CHANNEL, stop, &mut listening, &mut on) {
            Ok(()) => return,
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if !failing {
                    tracing::warn!(
                        "live events from other server processes are not received: {e}; \
                         connecting again"
                    );
                    failing = true;
                }
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_skip_their_own_process_and_refuse_what_notify_cannot_carry() {
        let event = Event::new("changed").data("a \"quoted\"\nline");
        let own = payload("t:1", &event).unwrap();
        assert!(parse(&own).is_none(), "this process's own event");
        let other = own.replace(origin(), "someone-else");
        assert_eq!(parse(&other), Some(("t:1".to_string(), event)));
        assert!(parse("not json").is_none());
        let big = Event::new("big").data("x".repeat(MAX_PAYLOAD));
        assert!(payload("t", &big).unwrap_err().contains("NOTIFY limit"));
    }
}
