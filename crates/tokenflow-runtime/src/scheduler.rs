//! Schedules of system flows (docs/flows.md). Every tick, each scheduled flow's due times up to now
//! are computed from its cron expression; each due time is claimed in the store
//! (`claim_firing`, a unique row per flow and due time), and only the instance whose claim
//! succeeds starts the run — so every firing runs exactly once, across restarts and instances.
//!
//! Missed firings policy: due times are never replayed. A schedule goes on from the latest of
//! - the start of this instance (firings missed while no instance ran are skipped),
//! - the flow's last claimed firing, and
//! - the creation of the flow version from which on it has had its current schedule: a schedule
//!   added, changed, or removed and added again through `PUT /api/flows/{id}` starts at its first
//!   due time after that version was stored. The anchor comes from the store, so every instance
//!   agrees on it.

use std::collections::HashMap;

use serde_json::Map;
use time::OffsetDateTime;
use tokenflow_core::flow::Schedule;
use tokenflow_store::FlowRow;
use tokio::task::JoinSet;

use crate::error::RuntimeError;
use crate::runner::RunView;
use crate::runtime::Runtime;

/// One instance's scheduler: where each flow's schedule goes on from.
#[derive(Debug)]
pub struct Scheduler {
    /// When this instance started (unix seconds).
    started: i64,
    /// Per flow: the version last looked at, and the last due time handled (fired here, or
    /// claimed by another instance) or the anchor it goes on from.
    cursors: HashMap<String, Cursor>,
    /// The runs this scheduler started that may still be running.
    runs: JoinSet<()>,
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    version: i64,
    due: i64,
}

impl Scheduler {
    /// A scheduler of an instance started at `started`.
    pub fn new(started: OffsetDateTime) -> Self {
        Self {
            started: started.unix_timestamp(),
            cursors: HashMap::new(),
            runs: JoinSet::new(),
        }
    }

    /// One pass: fires every due time in (cursor, now]. Returns how many runs this instance
    /// started.
    pub async fn tick(&mut self, state: &Runtime) -> Result<usize, RuntimeError> {
        // Forget the runs that have ended.
        while self.runs.try_join_next().is_some() {}
        let now = state.clock.now().unix_timestamp();
        let mut fired = 0;
        for (flow, row) in state.catalog.all().await? {
            let Some(schedule) = flow
                .schedule
                .as_deref()
                .and_then(|source| source.parse::<Schedule>().ok())
            else {
                // Forgotten, so that a schedule added again later starts afresh.
                self.cursors.remove(&flow.id);
                continue;
            };
            let cursor = match self.cursors.get(&flow.id) {
                Some(cursor) if cursor.version == row.version => cursor.due,
                known => self.anchor(state, &row, known.map(|c| c.due)).await?,
            };
            let mut due = schedule.next_after(cursor);
            let mut new_cursor = cursor;
            while let Some(at) = due.filter(|at| *at <= now) {
                new_cursor = at;
                let run = match state.runner.engine().start(&flow, Map::new()) {
                    Ok(run) => run,
                    Err(err) => {
                        tracing::error!(flow = %flow.id, error = %err, "a scheduled run cannot start");
                        break;
                    }
                };
                if state
                    .store
                    .claim_firing(&flow.id, at, &run.id, state.clock.now())
                    .await?
                {
                    let view = RunView {
                        run,
                        flow: flow.clone(),
                        version: row.version,
                        browser_binding: None,
                    };
                    let runner = state.runner.clone();
                    let flow_id = flow.id.clone();
                    self.runs.spawn(async move {
                        if let Err(err) = runner.start_run(view).await {
                            tracing::error!(flow = %flow_id, error = %err, "a scheduled run failed to start");
                        }
                    });
                    fired += 1;
                }
                due = schedule.next_after(at);
            }
            self.cursors.insert(
                flow.id.clone(),
                Cursor {
                    version: row.version,
                    due: new_cursor,
                },
            );
        }
        Ok(fired)
    }

    /// Stops the runs this scheduler started that still run, and waits until they have: such a
    /// run stays `running` with its lease and is recovered as interrupted (see [`crate::tasks`]).
    pub async fn stop(&mut self) {
        self.runs.shutdown().await;
    }

    /// Where the schedule of `row` (the flow's newest version) goes on from, on the first look at
    /// the flow or at a new version of it: the latest of this instance's start, the cursor so far,
    /// the last claimed firing and the creation of the version the current schedule began with.
    async fn anchor(
        &self,
        state: &Runtime,
        row: &FlowRow,
        known: Option<i64>,
    ) -> Result<i64, RuntimeError> {
        let last = state.store.last_firing(&row.id).await?.map(|f| f.due);
        let floor = self
            .started
            .max(known.unwrap_or(i64::MIN))
            .max(last.unwrap_or(i64::MIN));
        Ok(floor.max(schedule_since(state, row, floor).await?))
    }
}

/// When the flow got the schedule its newest version `row` has (unix seconds): the creation of
/// the oldest version in the unbroken line of versions up to `row` with that same schedule.
/// Versions created at or before `floor` do not matter (the caller takes the later of both), so
/// the walk back stops there.
async fn schedule_since(state: &Runtime, row: &FlowRow, floor: i64) -> Result<i64, RuntimeError> {
    let Some(current) = state.catalog.version(&row.id, row.version).await? else {
        return Ok(row.created_at.unix_timestamp());
    };
    let mut since = row.created_at.unix_timestamp();
    let mut version = row.version - 1;
    while version >= 1 && since > floor {
        let (Some(older), Some(older_row)) = (
            state.catalog.version(&row.id, version).await?,
            state.store.get_flow_version(&row.id, version).await?,
        ) else {
            break;
        };
        if older.schedule != current.schedule {
            break;
        }
        since = older_row.created_at.unix_timestamp();
        version -= 1;
    }
    Ok(since)
}

/// The next due time of a schedule after `now` (unix seconds).
pub fn next_due(schedule: &str, now: i64) -> Option<i64> {
    schedule.parse::<Schedule>().ok()?.next_after(now)
}
