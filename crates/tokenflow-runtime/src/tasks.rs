//! The background tasks of a serving instance, owned together by one [`RuntimeHandle`]:
//! - the sweeper: expired pending logins, runs whose instance stopped, housekeeping purges;
//! - the scheduler, with the runs it starts;
//! - the vault keep-alive;
//! - the device poller: waiting device logins whose next poll is due ([`crate::device`]);
//! - the flow watch, when other processes may store flows (PostgreSQL): it keeps the flow
//!   catalogue's newest versions current ([`crate::catalog::FlowCatalog::apply`]).
//!
//! Shutdown invariant: once [`RuntimeHandle::shutdown`] returns, none of these tasks, and no run
//! the scheduler started, runs any more; dropping the handle without it aborts them too (without
//! waiting). Each task is stopped at its next await point, also in the middle of a pass. A run
//! being driven at that moment stays `running` in the store with its lease, exactly as if the
//! process had stopped there: once the lease expires, the sweeper of any instance (or the next
//! start-up) fails it as interrupted, because its current action may not be idempotent.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::runtime::Runtime;
use crate::scheduler::Scheduler;

/// The running background tasks of a [`Runtime`].
#[derive(Debug)]
pub struct RuntimeHandle {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Runtime {
    /// Starts the sweeper, the scheduler, the vault keep-alive, the device poller and the flow
    /// watch.
    pub fn spawn(&self) -> RuntimeHandle {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(sweep(self.clone(), stopped.clone()));
        tasks.spawn(schedule(self.clone(), stopped.clone()));
        tasks.spawn(keep_alive(self.clone(), stopped.clone()));
        tasks.spawn(poll_devices(self.clone(), stopped.clone()));
        if let Some(changes) = self.store.flow_changes() {
            tasks.spawn(watch_flows(self.clone(), changes, stopped));
        }
        RuntimeHandle { stop, tasks }
    }
}

impl RuntimeHandle {
    /// Stops every background task and waits until each has ended.
    pub async fn shutdown(mut self) {
        // Fails only when every task has already ended (and dropped its receiver).
        let _ = self.stop.send(true);
        while let Some(ended) = self.tasks.join_next().await {
            if let Err(err) = ended
                && err.is_panic()
            {
                tracing::error!(error = %err, "a background task panicked");
            }
        }
    }
}

/// Resolves once a stop is asked for (or the handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Runs `pass` until a stop is asked for, abandoning a pass under way at that moment.
async fn until_stopped(stop: &mut watch::Receiver<bool>, pass: impl Future<Output = ()>) -> bool {
    tokio::select! {
        biased;
        () = stopped(stop) => false,
        () = pass => true,
    }
}

async fn sweep(runtime: Runtime, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(runtime.intervals.sweep);
    loop {
        let pass = async {
            ticker.tick().await;
            if let Err(err) = runtime.runner.sweep_once().await {
                tracing::error!(error = %err, "sweeping expired logins failed");
            }
        };
        if !until_stopped(&mut stop, pass).await {
            return;
        }
    }
}

async fn schedule(runtime: Runtime, mut stop: watch::Receiver<bool>) {
    let mut scheduler = Scheduler::new(runtime.clock.now());
    let mut ticker = tokio::time::interval(runtime.intervals.schedule_tick);
    loop {
        let pass = async {
            ticker.tick().await;
            if let Err(err) = scheduler.tick(&runtime).await {
                tracing::error!(error = %err, "the scheduler tick failed");
            }
        };
        if !until_stopped(&mut stop, pass).await {
            break;
        }
    }
    scheduler.stop().await;
}

async fn keep_alive(runtime: Runtime, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(runtime.intervals.vault_keep_alive);
    loop {
        let pass = async {
            ticker.tick().await;
            if let Some(vault) = runtime.runner.engine().vault() {
                vault.keep_alive_once().await;
            }
        };
        if !until_stopped(&mut stop, pass).await {
            return;
        }
    }
}

async fn poll_devices(runtime: Runtime, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(runtime.intervals.device_poll);
    loop {
        let pass = async {
            ticker.tick().await;
            if let Err(err) = runtime.runner.poll_devices_once().await {
                tracing::error!(error = %err, "polling device logins failed");
            }
        };
        if !until_stopped(&mut stop, pass).await {
            return;
        }
    }
}

async fn watch_flows(
    runtime: Runtime,
    mut changes: Box<dyn tokenflow_store::FlowChanges>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let pass = async {
            let change = changes.next().await;
            if change == tokenflow_store::FlowChange::Lost {
                tracing::warn!(
                    "flow changes may have been missed; flows are read from the database until the feed listens again"
                );
            }
            runtime.catalog.apply(&change);
        };
        if !until_stopped(&mut stop, pass).await {
            return;
        }
    }
}
