//! Where a serving process is in its life, for apps' background work: started by
//! [`App::start`](crate::App::start) once the process serves, it stops taking new work
//! when [`Lifecycle::stopping`] resolves (a SIGTERM, or the successor of a SIGHUP is
//! ready) and has until the deadline it gives to finish.

use tokio::sync::watch;
use tokio::time::Instant;

/// The phase of this process; cheap to clone (`ctx.lifecycle`).
#[derive(Clone, Debug)]
pub struct Lifecycle(watch::Sender<Phase>);

/// See [`Lifecycle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Booting, or not a server at all (a CLI command).
    Starting,
    /// Ready and serving requests.
    Serving,
    /// Draining: finish what runs by `deadline` (the end of `--shutdown-timeout`).
    Stopping { deadline: Instant },
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle(watch::channel(Phase::Starting).0)
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Resolves once the process serves (never for a CLI command).
    pub async fn serving(&self) {
        let mut rx = self.0.subscribe();
        // Only fails when the sender is gone, which `self` prevents.
        let _ = rx.wait_for(|p| *p != Phase::Starting).await;
    }

    /// Resolves when the process starts draining, with the deadline for work in progress.
    pub async fn stopping(&self) -> Instant {
        let mut rx = self.0.subscribe();
        let phase = rx.wait_for(|p| matches!(p, Phase::Stopping { .. })).await.map(|p| *p);
        match phase {
            Ok(Phase::Stopping { deadline }) => deadline,
            _ => std::future::pending().await,
        }
    }

    pub(crate) fn set_serving(&self) {
        self.0.send_if_modified(|p| {
            let starting = *p == Phase::Starting;
            if starting {
                *p = Phase::Serving;
            }
            starting
        });
    }

    pub(crate) fn set_stopping(&self, deadline: Instant) {
        self.0.send_replace(Phase::Stopping { deadline });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn phases_resolve_waiters_in_order() {
        let lifecycle = Lifecycle::default();
        assert_eq!(lifecycle.phase(), Phase::Starting);
        let stopping = tokio::spawn({
            let l = lifecycle.clone();
            async move { l.stopping().await }
        });
        lifecycle.set_serving();
        lifecycle.serving().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        lifecycle.set_stopping(deadline);
        assert_eq!(stopping.await.unwrap(), deadline);
        // Serving again never follows stopping.
        lifecycle.set_serving();
        assert_eq!(lifecycle.phase(), Phase::Stopping { deadline });
    }
}
