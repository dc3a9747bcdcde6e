//! Turns at SQLite's one writer connection, the escalation path's first.
//!
//! SQLite has one writer, so a flag's transaction shares it with the message and ack
//! writers' batches. The pool hands its connection out first come, first served: a flag
//! would wait for the batch in progress and for every batch queued before it. With turns,
//! the batch writers take a turn before they ask for the connection and give way while an
//! urgent turn is wanted, so a flag waits only for the batch in progress.
//!
//! On PostgreSQL the escalation path has connections of its own and a flag takes no turn.

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard, watch};

/// Turns at one writer connection; cloned handles share them. [`Turns::off`] hands out
/// turns that order nothing (where there is no shared writer).
#[derive(Clone)]
pub struct Turns(Option<Shared>);

#[derive(Clone)]
struct Shared {
    turn: Arc<Mutex<()>>,
    /// How many urgent turns are wanted or held.
    urgent: Arc<watch::Sender<usize>>,
}

/// A turn, held until dropped (after the transaction's commit or rollback).
pub struct Turn {
    _turn: Option<OwnedMutexGuard<()>>,
    _urgent: Option<Wanted>,
}

/// An urgent turn wanted or held; dropping it lets batches go again.
struct Wanted(Arc<watch::Sender<usize>>);

impl Drop for Wanted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Turns {
    /// Turns at a writer shared by batches and the escalation path (SQLite's one).
    pub fn shared() -> Turns {
        Turns(Some(Shared {
            turn: Arc::new(Mutex::new(())),
            urgent: Arc::new(watch::channel(0).0),
        }))
    }

    /// Turns that order nothing: each is given at once.
    pub fn off() -> Turns {
        Turns(None)
    }

    /// A batch writer's turn: after every urgent turn wanted so far.
    pub async fn batch(&self) -> Turn {
        let Some(s) = &self.0 else {
            return Turn::none();
        };
        let mut urgent = s.urgent.subscribe();
        loop {
            // Cannot fail: `s` holds the sender.
            let _ = urgent.wait_for(|n| *n == 0).await;
            let turn = s.turn.clone().lock_owned().await;
            // An urgent turn wanted while this one waited in line goes first.
            if *urgent.borrow() == 0 {
                return Turn {
                    _turn: Some(turn),
                    _urgent: None,
                };
            }
        }
    }

    /// The escalation path's turn: ahead of every batch not yet in progress.
    pub async fn urgent(&self) -> Turn {
        let Some(s) = &self.0 else {
            return Turn::none();
        };
        s.urgent.send_modify(|n| *n += 1);
        let wanted = Wanted(s.urgent.clone());
        let turn = s.turn.clone().lock_owned().await;
        Turn {
            _turn: Some(turn),
            _urgent: Some(wanted),
        }
    }
}

impl Turn {
    fn none() -> Turn {
        Turn {
            _turn: None,
            _urgent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn an_urgent_turn_goes_before_batches_already_waiting_but_after_the_one_in_progress() {
        let turns = Turns::shared();
        let (order, mut done) = mpsc::unbounded_channel();
        let in_progress = turns.batch().await;
        // Two batches queue up behind the one in progress, then a flag arrives.
        let mut waiting = Vec::new();
        for name in ["batch 1", "batch 2"] {
            let (turns, order) = (turns.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _t = turns.batch().await;
                let _ = order.send(name);
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let flag = {
            let (turns, order) = (turns.clone(), order.clone());
            tokio::spawn(async move {
                let _t = turns.urgent().await;
                let _ = order.send("flag");
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            done.try_recv().is_err(),
            "nothing before the batch in progress ends"
        );
        drop(in_progress);
        for t in waiting.into_iter().chain([flag]) {
            t.await.expect("task");
        }
        let mut seen = Vec::new();
        while let Ok(n) = done.try_recv() {
            seen.push(n);
        }
        assert_eq!(seen.first(), Some(&"flag"), "{seen:?}");
        seen.sort_unstable();
        assert_eq!(seen, ["batch 1", "batch 2", "flag"]);
        // Without the flag, batches keep their order (the control).
        let first = turns.batch().await;
        let (turns2, order2) = (turns.clone(), order.clone());
        let later = tokio::spawn(async move {
            let _t = turns2.batch().await;
            let _ = order2.send("later");
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(done.try_recv().is_err());
        drop(first);
        later.await.expect("task");
        assert_eq!(done.try_recv().ok(), Some("later"));
    }

    #[tokio::test]
    async fn a_cancelled_urgent_wait_lets_batches_go_again() {
        let turns = Turns::shared();
        let held = turns.batch().await;
        let wanting = {
            let turns = turns.clone();
            tokio::spawn(async move {
                let _t = turns.urgent().await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        wanting.abort();
        let _ = wanting.await;
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), turns.batch())
            .await
            .expect("a batch gets its turn once the urgent wait is gone");
    }
}
