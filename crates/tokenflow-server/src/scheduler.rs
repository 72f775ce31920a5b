//! Schedules of system flows (SPEC §8.4). Every tick, each scheduled flow's due times up to now
//! are computed from its cron expression; each due time is claimed in the store
//! (`claim_firing`, a unique row per flow and due time), and only the instance whose claim
//! succeeds starts the run — so every firing runs exactly once, across restarts and instances.
//!
//! Missed firings policy: due times that passed while no instance was running are not replayed.
//! After start-up, scheduling resumes with the first due time after the start (or after the last
//! claimed firing, whichever is later).

use std::collections::HashMap;

use serde_json::Map;
use tokenflow_core::flow::Schedule;

use crate::runner::RunView;
use crate::state::AppState;

/// Runs the scheduler until the task is aborted.
pub async fn run_forever(state: AppState) {
    let started = state.clock.now().unix_timestamp();
    let mut cursors: HashMap<String, i64> = HashMap::new();
    let mut ticker = tokio::time::interval(state.settings.schedule_tick);
    loop {
        ticker.tick().await;
        if let Err(err) = tick(&state, started, &mut cursors).await {
            tracing::error!(error = %err, "the scheduler tick failed");
        }
    }
}

/// One pass: fires every due time in (cursor, now]. Returns how many runs this instance started.
pub async fn tick(
    state: &AppState,
    started: i64,
    cursors: &mut HashMap<String, i64>,
) -> Result<usize, crate::error::ApiError> {
    let now = state.clock.now().unix_timestamp();
    let mut fired = 0;
    for (flow, row) in state.catalog.all().await? {
        let Some(source) = &flow.schedule else {
            continue;
        };
        let Ok(schedule) = source.parse::<Schedule>() else {
            continue;
        };
        let cursor = match cursors.get(&flow.id) {
            Some(cursor) => *cursor,
            None => {
                let last = state
                    .store
                    .last_firing(&flow.id)
                    .await?
                    .map_or(started, |f| f.due.max(started));
                last.max(started)
            }
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
                tokio::spawn(async move {
                    if let Err(err) = runner.start_run(view).await {
                        tracing::error!(flow = %flow_id, error = %err, "a scheduled run failed to start");
                    }
                });
                fired += 1;
            }
            due = schedule.next_after(at);
        }
        cursors.insert(flow.id.clone(), new_cursor);
    }
    Ok(fired)
}

/// The next due time of a schedule after `now` (unix seconds).
pub fn next_due(schedule: &str, now: i64) -> Option<i64> {
    schedule.parse::<Schedule>().ok()?.next_after(now)
}
