//! Durable execution: every transition of a run is written to the store before anything else
//! happens — one write per executed action (state + monitor record in one transaction), and the
//! pending authorization together with the `waiting` state. A run can therefore always continue
//! from the store: after a restart, or when the callback lands on another instance.
//!
//! Within one process, operations on one run (callback, cancel, expiry) are serialized by a
//! per-run lock. Runs found `running` at start-up were interrupted mid-action; they are marked
//! failed, not retried, because an action (an HTTP call) may not be idempotent.
//!
//! A run's history is never held whole: once its monitor records are stored, the run keeps only
//! the last [`SHOWN_RECORDS`] of them in memory (for its JSON), loading a run reads only those,
//! and continuing or recovering one reads none. The API and the UI page through the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokenflow_connectors::oauth::CallbackParams;
use tokenflow_core::{Clock, SecretString};
use tokenflow_engine::{ActionRecord, Engine, Progress, Run, RunStatus};
use tokenflow_store::{ActionRecordRow, PendingRow, RunRow, Store, TakePending};

use crate::catalog::FlowCatalog;
use crate::error::RuntimeError;
use crate::metrics::Metrics;
use crate::outage::write_through_outage;
use crate::retention::StorageBounds;
pub use crate::run_view::{
    ActionRecordBody, DeviceBody, RecordsPage, RunBody, RunView, SHOWN_RECORDS,
};

/// What `/oauth-callback` did.
#[derive(Debug)]
pub enum CallbackResult {
    MissingState,
    /// No pending login has this state (never existed, or already used).
    UnknownState,
    /// The run was started from a browser and this request does not carry its binding cookie.
    WrongBrowser,
    /// Neither `code` nor `error`.
    MissingCode,
    /// The login had expired: its action ended -2 and the run went on.
    Expired(RunView),
    /// The login finished (successfully or not) and the run went on.
    Resumed(RunView),
}

/// Drives runs and persists them.
#[derive(Debug)]
pub struct Runner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Engine,
    catalog: Arc<FlowCatalog>,
    metrics: Arc<Metrics>,
    pub(crate) clock: Arc<dyn Clock>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This instance's name in run leases and device-poll claims.
    pub(crate) owner: String,
    /// How long a run's lease lasts without renewal; another instance fails the run after that.
    lease: Duration,
    /// When the sweeper last purged consumed logins and old firings.
    purged: Mutex<Option<time::OffsetDateTime>>,
    /// Retention and the bound on waiting runs ([`crate::retention`]).
    bounds: StorageBounds,
}

/// How long a consumed login is kept (a replayed `state` is answered "already used" until then,
/// "unknown" after), and claimed schedule firings other than each flow's newest.
pub const KEEP_CONSUMED: time::Duration = time::Duration::hours(24);
/// How often the sweeper purges them.
const PURGE_EVERY: time::Duration = time::Duration::hours(1);
/// Expired web UI sessions deleted per statement, and statements per purge.
const SESSION_PURGE_BATCH: u32 = 1000;
const SESSION_PURGE_BATCHES: u32 = 100;

/// The default run lease (`run_lease` in the configuration).
pub const DEFAULT_RUN_LEASE: Duration = Duration::from_secs(30);

/// The cookie that binds a browser-started login to its browser (docs/api.md).
pub fn binding_cookie_name(run_id: &str) -> String {
    format!("tokenflow_login_{}", run_id.replace('-', ""))
}

impl Runner {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Engine,
        catalog: Arc<FlowCatalog>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            engine,
            catalog,
            metrics,
            clock,
            locks: Mutex::new(HashMap::new()),
            owner: instance_name(),
            lease: DEFAULT_RUN_LEASE,
            purged: Mutex::new(None),
            bounds: StorageBounds::default(),
        }
    }

    /// Sets retention and the bound on waiting runs.
    pub fn with_bounds(mut self, bounds: StorageBounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// Sets the run lease.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Starts the newest version of `flow_id` and drives it until it waits or ends.
    pub async fn start(
        &self,
        flow_id: &str,
        inputs: Map<String, Value>,
        browser_binding: Option<String>,
    ) -> Result<RunView, RuntimeError> {
        let Some((flow, version)) = self.catalog.current(flow_id).await? else {
            return Err(RuntimeError::NotFound(format!("flow `{flow_id}`")));
        };
        let run = self
            .engine
            .start(&flow, inputs)
            .map_err(|err| RuntimeError::InvalidInput(err.to_string()))?;
        self.start_run(RunView {
            run,
            flow,
            version,
            browser_binding,
        })
        .await
    }

    /// Drives a freshly started run; it is first written with its first records, before the
    /// first action that is not repeatable or when it waits or ends ([`Self::drive`]).
    pub async fn start_run(&self, mut view: RunView) -> Result<RunView, RuntimeError> {
        self.bounds
            .check_waiting_runs(self.store.as_ref(), &view.flow)
            .await?;
        // One line per run at `info` ("run ended", with its status) is the access log of runs;
        // the start and every action are `debug`: the monitor records them anyway.
        tracing::debug!(run = %view.run.id, flow = %view.run.flow_id, version = view.version, "run started");
        let lock = self.lock(&view.run.id);
        let _guard = lock.lock().await;
        self.drive(&mut view, false).await?;
        Ok(view)
    }

    /// Loads a run with its flow version and its last [`SHOWN_RECORDS`] monitor records.
    pub async fn load(&self, run_id: &str) -> Result<Option<RunView>, RuntimeError> {
        self.load_with(run_id, SHOWN_RECORDS).await
    }

    /// Loads a run with its flow version but no monitor record, to continue or end it: however
    /// long its history, only its state is read.
    pub async fn load_state(&self, run_id: &str) -> Result<Option<RunView>, RuntimeError> {
        self.load_with(run_id, 0).await
    }

    /// Reads a page of a run's monitor records; `None` when there is no such run.
    pub async fn records_page(
        &self,
        run_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Option<RecordsPage>, RuntimeError> {
        let total = self.store.action_record_count(run_id).await?;
        // Only a run without records needs the (larger) run row to tell it from no run.
        if total == 0 && self.store.get_run(run_id).await?.is_none() {
            return Ok(None);
        }
        let mut records = Vec::new();
        for row in self
            .store
            .action_records_page(run_id, offset, limit)
            .await?
        {
            records.push(serde_json::from_str(&row.json).map_err(RuntimeError::unreadable)?);
        }
        Ok(Some(RecordsPage {
            total,
            offset,
            records,
        }))
    }

    async fn load_with(&self, run_id: &str, shown: usize) -> Result<Option<RunView>, RuntimeError> {
        let Some(row) = self.store.get_run(run_id).await? else {
            return Ok(None);
        };
        let Some(flow) = self.catalog.version(&row.flow_id, row.flow_version).await? else {
            return Err(RuntimeError::Store(tokenflow_store::StoreError::Corrupt(
                format!("run {} refers to a missing flow version", row.id),
            )));
        };
        let total = self.store.action_record_count(run_id).await?;
        let first_record = total.saturating_sub(shown as u64);
        let mut records = Vec::new();
        if shown > 0 {
            let page = u32::try_from(shown).unwrap_or(u32::MAX);
            for record in self
                .store
                .action_records_page(run_id, first_record, page)
                .await?
            {
                let record: ActionRecord =
                    serde_json::from_str(&record.json).map_err(RuntimeError::unreadable)?;
                records.push(record);
            }
        }
        let run = Run::from_stored(
            row.id,
            row.flow_id,
            row.status,
            &row.state,
            records,
            first_record,
            row.started_at,
            row.ended_at,
        )
        .map_err(RuntimeError::unreadable)?;
        Ok(Some(RunView {
            run,
            flow,
            version: row.flow_version,
            browser_binding: row.browser_binding,
        }))
    }

    /// Cancels a run that has not ended (docs/api.md `DELETE /api/runs/{id}`).
    pub async fn cancel(&self, run_id: &str) -> Result<RunView, RuntimeError> {
        let lock = self.lock(run_id);
        let _guard = lock.lock().await;
        let Some(mut view) = self.load(run_id).await? else {
            return Err(RuntimeError::NotFound(format!("run `{run_id}`")));
        };
        if view.run.status.is_final() {
            return Err(RuntimeError::Conflict(format!(
                "run `{run_id}` has already ended ({})",
                view.run.status.as_str()
            )));
        }
        self.store.discard_pending_for_run(run_id).await?;
        self.engine
            .cancel(&mut view.run, "cancelled through the API");
        self.persist(&view, view.run.record_count(), true).await?;
        Ok(view)
    }

    /// Handles the identity provider's redirect. Nothing is consumed unless the request is
    /// complete and comes from the right browser.
    pub async fn callback(
        &self,
        params: &CallbackParams,
        cookie: impl Fn(&str) -> Option<String>,
    ) -> Result<CallbackResult, RuntimeError> {
        let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(CallbackResult::MissingState);
        };
        let state = SecretString::new(state);
        let Some(pending) = self.store.find_pending_authorization(&state).await? else {
            return Ok(CallbackResult::UnknownState);
        };
        let Some(row) = self.store.get_run(&pending.run_id).await? else {
            return Ok(CallbackResult::UnknownState);
        };
        if let Some(binding) = &row.browser_binding {
            let given =
                cookie(&binding_cookie_name(&row.id)).map(|value| crate::keys::hash_key(&value));
            if given.as_deref() != Some(binding.as_str()) {
                return Ok(CallbackResult::WrongBrowser);
            }
        }
        if params.code.is_none() && params.error.is_none() {
            return Ok(CallbackResult::MissingCode);
        }
        let lock = self.lock(&pending.run_id);
        let _guard = lock.lock().await;
        match self
            .store
            .take_pending_authorization(&state, self.clock.now())
            .await?
        {
            TakePending::Unknown | TakePending::AlreadyUsed => Ok(CallbackResult::UnknownState),
            TakePending::Expired(row) => match self.expire_pending(&row).await? {
                Some(view) => Ok(CallbackResult::Expired(view)),
                None => Ok(CallbackResult::UnknownState),
            },
            TakePending::Taken(row) => {
                let Some(mut view) = self.load_state(&row.run_id).await? else {
                    return Ok(CallbackResult::UnknownState);
                };
                if view.run.status != RunStatus::Waiting {
                    return Ok(CallbackResult::UnknownState);
                }
                let before = view.run.record_count();
                let progress = self.engine.resume(&view.flow, &mut view.run, params).await;
                self.persist(&view, before, true).await?;
                if progress == Progress::Continued {
                    self.drive(&mut view, true).await?;
                }
                Ok(CallbackResult::Resumed(view))
            }
        }
    }

    /// Ends every expired pending login with -2 and lets its run go on, and fails runs whose
    /// instance died; returns how many logins it ended.
    pub async fn sweep_once(&self) -> Result<usize, RuntimeError> {
        let interrupted = self.recover_interrupted().await?;
        if interrupted > 0 {
            tracing::warn!(
                runs = interrupted,
                "runs whose instance stopped were marked failed"
            );
        }
        self.purge_if_due().await?;
        let expired = self.store.take_expired_pending(self.clock.now()).await?;
        let mut handled = 0;
        for row in expired {
            let lock = self.lock(&row.run_id);
            let _guard = lock.lock().await;
            if self.expire_pending(&row).await?.is_some() {
                handled += 1;
            }
        }
        Ok(handled)
    }

    /// Deletes consumed logins and old schedule firings (`KEEP_CONSUMED`), expired UI sessions
    /// and the ended runs retention no longer keeps, at most once per hour.
    async fn purge_if_due(&self) -> Result<(), RuntimeError> {
        let now = self.clock.now();
        let due = match self.purged.lock() {
            Ok(mut purged) if purged.is_none_or(|at| now - at >= PURGE_EVERY) => {
                *purged = Some(now);
                true
            }
            _ => false,
        };
        if due {
            let deleted = self.store.purge_consumed(now - KEEP_CONSUMED).await?;
            if deleted > 0 {
                tracing::info!(
                    rows = deleted,
                    "purged consumed logins and old schedule firings"
                );
            }
            self.purge_expired_sessions(now).await?;
            self.bounds
                .apply_retention(self.store.as_ref(), &self.metrics, now)
                .await?;
        }
        Ok(())
    }

    /// Deletes expired web UI sessions, in batches (each a short write) and at most
    /// `SESSION_PURGE_BATCHES` of them per purge; what is left goes at the next purge. An
    /// expired session is refused anyway: this only keeps the table small.
    async fn purge_expired_sessions(&self, now: time::OffsetDateTime) -> Result<(), RuntimeError> {
        let mut deleted = 0;
        for _ in 0..SESSION_PURGE_BATCHES {
            let batch = self
                .store
                .purge_expired_ui_sessions(now, SESSION_PURGE_BATCH)
                .await?;
            deleted += batch;
            if batch < u64::from(SESSION_PURGE_BATCH) {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(rows = deleted, "purged expired web UI sessions");
        }
        Ok(())
    }

    async fn renew_lease(&self, run_id: &str) {
        let until = self.clock.now()
            + time::Duration::try_from(self.lease).unwrap_or(time::Duration::seconds(30));
        if let Err(err) = self.store.renew_run_lease(run_id, &self.owner, until).await {
            tracing::warn!(run = run_id, error = %err, "cannot renew the run's lease");
        }
    }

    /// Marks runs whose instance died (their lease expired) as failed; returns how many this
    /// instance failed. Runs at start-up and with every sweep, on every instance: the per-run
    /// lock only orders this process, so each run is claimed in the store with one conditional
    /// write (`fail_interrupted_run`), and only the instance whose write landed logs and counts
    /// it — a run ends once, with one `ended_at`, however many sweepers found it.
    pub async fn recover_interrupted(&self) -> Result<usize, RuntimeError> {
        let grace = i64::try_from(self.lease.as_millis()).unwrap_or(30_000);
        let ids = self
            .store
            .runs_with_expired_lease(self.clock.now(), grace)
            .await?;
        let mut recovered = 0;
        for id in ids {
            let lock = self.lock(&id);
            let _guard = lock.lock().await;
            let Some(mut view) = self.load_state(&id).await? else {
                continue;
            };
            if view.run.status != RunStatus::Running {
                continue;
            }
            let at = view.run.next.clone().unwrap_or_else(|| "?".to_owned());
            // The run's failed form, built here rather than by `Engine::fail`, which logs: only
            // the instance that wins the claim below may say that the run failed.
            let now = self.clock.now();
            view.run.status = RunStatus::Failed;
            view.run.next = None;
            view.run.waiting = None;
            view.run.reason = Some(format!(
                "interrupted: tokenflow stopped while the run was at `{at}`; actions are not retried because they may not be idempotent"
            ));
            view.run.ended_at = Some(now);
            if !self
                .store
                .fail_interrupted_run(&self.row(&view), now, grace)
                .await?
            {
                continue;
            }
            self.metrics
                .run_ended(&view.run.flow_id, view.run.status.as_str());
            tracing::warn!(run = %view.run.id, flow = %view.run.flow_id, reason = ?view.run.reason, "run failed");
            tracing::info!(run = %view.run.id, status = view.run.status.as_str(), reason = ?view.run.reason, "run ended");
            recovered += 1;
        }
        Ok(recovered)
    }

    pub(crate) async fn expire_pending(
        &self,
        row: &PendingRow,
    ) -> Result<Option<RunView>, RuntimeError> {
        let Some(mut view) = self.load_state(&row.run_id).await? else {
            return Ok(None);
        };
        // A run waits on one login at a time; the sweeper's rows carry no raw state to compare.
        let belongs = view
            .run
            .waiting
            .as_ref()
            .is_some_and(|w| w.action == row.action);
        if view.run.status != RunStatus::Waiting || !belongs {
            return Ok(None);
        }
        let before = view.run.record_count();
        let progress = self.engine.expire(&view.flow, &mut view.run);
        self.persist(&view, before, true).await?;
        if progress == Progress::Continued {
            self.drive(&mut view, true).await?;
        }
        Ok(Some(view))
    }

    /// Steps the run until it waits or ends. The state and the monitor records are persisted
    /// before every action with effects (I/O, tokens, the vault, a login) and when the run waits or
    /// ends; the records of actions without effects (`extract_json`, `stop`) are written with the
    /// next of those, in the same transaction. A crash therefore never loses the record of an
    /// action with effects, and the run is failed as interrupted at the step it had reached.
    /// Stored records are dropped from memory but for the last [`SHOWN_RECORDS`], and a long
    /// stretch of actions without effects is written every [`SHOWN_RECORDS`] records.
    ///
    /// A new run (`stored` false) is not written before its first action when that action is
    /// repeatable (a client-credentials token: `ActionKind::is_repeatable`): it is created
    /// together with that action's record, before the next action starts. One write less per
    /// run; a crash during such an action leaves no run, and nothing outside it to account for
    /// (ARCHITECTURE.md, "Durable runs").
    pub(crate) async fn drive(
        &self,
        view: &mut RunView,
        mut stored: bool,
    ) -> Result<(), RuntimeError> {
        // Every record before sequence number `saved` is in the store (the caller persisted it).
        let mut saved = view.run.record_count();
        view.run.forget_records(saved, SHOWN_RECORDS);
        let mut written = std::time::Instant::now();
        loop {
            let next = view
                .run
                .next
                .as_ref()
                .and_then(|next| view.flow.actions.get(next));
            let effects = next.is_none_or(|action| action.spec.has_effects());
            let repeatable = next.is_some_and(|action| action.spec.kind.is_repeatable());
            if effects {
                if saved < view.run.record_count() || (!stored && !repeatable) {
                    self.persist(view, saved, stored).await?;
                    stored = true;
                    saved = view.run.record_count();
                    view.run.forget_records(saved, SHOWN_RECORDS);
                    written = std::time::Instant::now();
                }
                // Every write of the run counts as a renewal of its lease (the store's
                // `runs_with_expired_lease`), and the run was written at most a moment ago.
                // Between actions the lease is renewed only when a third of it passed since the
                // last write.
                if stored && written.elapsed() >= self.lease / 3 {
                    self.renew_lease(&view.run.id).await;
                }
            }
            let progress = if effects && stored {
                // A heartbeat renews the lease while the action runs, so a long HTTP call is not
                // taken for a dead instance. It runs in this task (no spawn: one wake-up less
                // per action) and stops with the action.
                let heartbeat = self.heartbeat(view.run.id.clone());
                tokio::select! {
                    biased;
                    progress = self.engine.step(&view.flow, &mut view.run) => progress,
                    never = heartbeat => match never {},
                }
            } else {
                self.engine.step(&view.flow, &mut view.run).await
            };
            let ended = progress != Progress::Continued;
            let unsaved = view.run.record_count() - saved;
            if effects || ended || unsaved >= SHOWN_RECORDS as u64 {
                self.persist(view, saved, stored).await?;
                stored = true;
                saved = view.run.record_count();
                view.run.forget_records(saved, SHOWN_RECORDS);
                written = std::time::Instant::now();
            }
            if ended {
                return Ok(());
            }
        }
    }

    /// Renews the run's lease every third of it, forever (until dropped).
    async fn heartbeat(&self, run_id: String) -> std::convert::Infallible {
        let mut ticker = tokio::time::interval(self.lease / 3);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.renew_lease(&run_id).await;
        }
    }

    /// Writes the run's state and its records from sequence number `stored` on; `exists` false
    /// creates the run with them.
    pub(crate) async fn persist(
        &self,
        view: &RunView,
        stored: u64,
        exists: bool,
    ) -> Result<(), RuntimeError> {
        let row = self.row(view);
        let run = &view.run;
        let skip = usize::try_from(stored.saturating_sub(run.first_record))
            .unwrap_or(usize::MAX)
            .min(run.records.len());
        let new_records = &run.records[skip..];
        let mut rows = Vec::with_capacity(new_records.len());
        for (offset, record) in new_records.iter().enumerate() {
            let seq = run.first_record + (skip + offset) as u64;
            rows.push(ActionRecordRow {
                run_id: run.id.clone(),
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                json: serde_json::to_string(record).map_err(RuntimeError::unreadable)?,
            });
        }
        let waiting = match (&view.run.waiting, view.run.status) {
            (Some(waiting), RunStatus::Waiting) => Some(waiting),
            _ => None,
        };
        // A new run's first write is not tried again: nothing outside the run happened before it
        // (its first actions are repeatable), so the caller may as well hear of the outage now.
        let patience = self.lease / 2;
        if !exists {
            self.store.create_run_with_records(&row, &rows).await?;
        } else if !rows.is_empty() || waiting.is_none() {
            write_through_outage(&run.id, patience, || {
                self.store.record_action_outcomes(&row, &rows)
            })
            .await?;
        }
        for record in new_records {
            self.metrics
                .action_executed(record.kind.as_str(), record.status_code);
            tracing::debug!(run = %view.run.id, action = %record.action, kind = %record.kind, status_code = ?record.status_code, "action executed");
        }
        if let Some(waiting) = waiting {
            let pending = PendingRow {
                state: waiting.pending.state.clone(),
                run_id: view.run.id.clone(),
                action: waiting.action.clone(),
                payload: SecretString::new(
                    serde_json::json!({ "server": waiting.pending.server_id, "redirect_uri": waiting.pending.redirect_uri }).to_string(),
                ),
                created_at: waiting.pending.created_at,
                expires_at: waiting.pending.expires_at,
            };
            if let Some(device) = &waiting.device {
                // Before the suspension: a schedule whose run did not get to wait is dropped by
                // the poller, a waiting run without one would never be polled.
                self.schedule_device_poll(&view.run.id, waiting, device)
                    .await?;
            }
            write_through_outage(&run.id, patience, || self.store.suspend_run(&row, &pending))
                .await?;
            tracing::info!(run = %view.run.id, action = %waiting.action, device = waiting.device.is_some(), "run waiting for a user login");
        }
        if view.run.status.is_final() {
            self.metrics
                .run_ended(&view.run.flow_id, view.run.status.as_str());
            tracing::info!(run = %view.run.id, flow = %view.run.flow_id, status = view.run.status.as_str(), reason = ?view.run.reason, "run ended");
        }
        Ok(())
    }

    fn row(&self, view: &RunView) -> RunRow {
        RunRow {
            id: view.run.id.clone(),
            flow_id: view.run.flow_id.clone(),
            flow_version: view.version,
            status: view.run.status,
            state: view.run.state_json(),
            browser_binding: view.browser_binding.clone(),
            started_at: view.run.started_at,
            updated_at: self.clock.now(),
            ended_at: view.run.ended_at,
        }
    }

    pub(crate) fn lock(&self, run_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut locks) = self.locks.lock() else {
            return Arc::new(tokio::sync::Mutex::new(()));
        };
        // Drop locks nobody holds, so the map does not grow with every run ever seen.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(run_id.to_owned()).or_default().clone()
    }
}

/// A unique name for this instance in run leases (random, from the OS).
fn instance_name() -> String {
    tokenflow_connectors::oauth::random::random_token(16)
        .map(|t| t.expose().to_owned())
        .unwrap_or_else(|_| "instance".to_owned())
}
