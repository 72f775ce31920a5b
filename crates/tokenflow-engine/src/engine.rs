//! The engine: start a run, execute one action per [`Engine::step`], suspend at a user login,
//! resume with the callback ([`Engine::resume`]) or its expiry ([`Engine::expire`]), cancel.
//!
//! Routing (docs/flows.md): after an action, the steps leaving it are tried in file order and the first
//! whose condition holds is taken; when none holds the run fails with the action, its status code
//! and the conditions tried. `max_steps` bounds the executed actions so a loop cannot run forever.
//!
//! What a run holds is bounded by [`RunLimits`] (docs/security.md, "Runs"): at most
//! `max_steps_limit` actions whatever the flow declares; its variables and monitor records together
//! at most `run_data_limit` bytes (checked after every action, the run fails naming the limit);
//! monitor values over `monitor_value_limit` bytes are kept as summaries ([`crate::monitor`]).

use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokenflow_connectors::http_action::HttpConnector;
use tokenflow_connectors::oauth::connectors::RedirectSettings;
use tokenflow_connectors::oauth::{CallbackParams, OAuthConnectors};
use tokenflow_core::flow::{Action, ActionKind, Condition, Flow, START, STOP};
use tokenflow_core::{Clock, RunLimits};

use crate::actions::{Execution, Outcome, execute, token_outcome};
use crate::context::ActionContext;
use crate::run::{ActionRecord, Run, RunStatus, Waiting};
use crate::servers::ServerDirectory;
use crate::vars::{Val, Variables};

/// Runs flows. Cheap to clone; holds the injected clients, clock and server directory.
#[derive(Debug, Clone)]
pub struct Engine {
    context: ActionContext,
    clock: Arc<dyn Clock>,
}

/// What one call to [`Engine::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An action ran; the run goes on.
    Continued,
    /// The run waits for a person (status `waiting`).
    Suspended,
    /// The run ended (completed, failed or cancelled).
    Finished,
}

/// A run could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("`{0}` is not a variable of this flow")]
    UnknownVariable(String),
    #[error("required input `{0}` is missing")]
    MissingInput(String),
}

impl Engine {
    pub fn new(
        oauth: OAuthConnectors,
        http: HttpConnector,
        servers: Arc<dyn ServerDirectory>,
        clock: Arc<dyn Clock>,
        redirect: RedirectSettings,
    ) -> Self {
        Self {
            context: ActionContext {
                oauth,
                http,
                servers,
                redirect,
                vault: None,
                limits: RunLimits::default(),
            },
            clock,
        }
    }

    /// Sets what a run may hold (`max_steps_limit`, `run_data_limit`, `monitor_value_limit`).
    pub fn with_limits(mut self, limits: RunLimits) -> Self {
        self.context.limits = limits;
        self
    }

    pub fn limits(&self) -> &RunLimits {
        self.context.limits()
    }

    /// Adds the token vault (`vault_store`, `vault_get_token`), kept in `store`.
    pub fn with_vault(mut self, store: Arc<dyn tokenflow_store::Store>) -> Self {
        self.context.vault = Some(Arc::new(crate::vault::StoreVault::new(
            store,
            self.context.oauth.clone(),
            self.context.servers.clone(),
            self.clock.clone(),
        )));
        self
    }

    pub fn vault(&self) -> Option<&crate::vault::StoreVault> {
        self.context.vault()
    }

    pub fn oauth(&self) -> &OAuthConnectors {
        self.context.oauth()
    }

    pub(crate) fn context(&self) -> &ActionContext {
        &self.context
    }

    pub fn http(&self) -> &HttpConnector {
        self.context.http()
    }

    pub fn servers(&self) -> &dyn ServerDirectory {
        self.context.servers()
    }

    pub fn redirect(&self) -> &RedirectSettings {
        self.context.redirect()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// A new run of `flow` with `inputs` (declared variables only), positioned after `start`.
    pub fn start(&self, flow: &Flow, inputs: Map<String, Value>) -> Result<Run, StartError> {
        for name in inputs.keys() {
            if !flow.variables.contains_key(name) {
                return Err(StartError::UnknownVariable(name.clone()));
            }
        }
        if let Some(missing) = flow
            .required_inputs()
            .into_iter()
            .find(|name| !inputs.contains_key(*name))
        {
            return Err(StartError::MissingInput(missing.to_owned()));
        }
        let mut variables = Variables::default();
        for (name, decl) in &flow.variables {
            if let Some(default) = &decl.default {
                variables.set(
                    name.clone(),
                    Val::for_variable(flow, name, default.clone(), false),
                );
            }
        }
        for (name, value) in inputs {
            let val = Val::for_variable(flow, &name, value, false);
            variables.set(name, val);
        }
        let mut run = Run {
            id: uuid::Uuid::now_v7().to_string(),
            flow_id: flow.id.clone(),
            status: RunStatus::Running,
            variables,
            next: None,
            executed: 0,
            records: Vec::new(),
            first_record: 0,
            record_bytes: 0,
            waiting: None,
            reason: None,
            started_at: self.clock.now(),
            ended_at: None,
        };
        self.route(flow, &mut run, START, 0);
        Ok(run)
    }

    /// Executes the next action of a running run.
    pub async fn step(&self, flow: &Flow, run: &mut Run) -> Progress {
        if run.status != RunStatus::Running {
            return if run.status == RunStatus::Waiting {
                Progress::Suspended
            } else {
                Progress::Finished
            };
        }
        let Some(next) = run.next.clone() else {
            self.fail(run, "the run has nowhere to go".to_owned());
            return Progress::Finished;
        };
        if next == STOP {
            self.finish(run, RunStatus::Completed, None);
            return Progress::Finished;
        }
        let Some(action) = flow.actions.get(&next) else {
            self.fail(run, format!("the flow has no action `{next}`"));
            return Progress::Finished;
        };
        // A flow stored before `max_steps_limit` was lowered may declare more.
        let max_steps = flow.max_steps.min(self.context.limits.max_steps);
        if run.executed >= max_steps {
            self.fail(
                run,
                format!("max_steps ({max_steps}) reached before `{next}`: the flow may loop"),
            );
            return Progress::Finished;
        }
        if self.over_budget(run, format_args!("before `{next}`")) {
            return Progress::Finished;
        }
        run.executed += 1;
        let started = self.clock.now();
        if action.spec.kind == ActionKind::Stop {
            // A named end: recorded, so the monitor shows which end the run reached.
            let outcome = Outcome {
                status_code: 0,
                ..Outcome::default()
            };
            self.record(run, action, started, Map::new(), &outcome);
            if !self.over_budget(run, format_args!("after `{}`", action.id)) {
                self.finish(run, RunStatus::Completed, None);
            }
            return Progress::Finished;
        }
        match execute(&self.context, action, &run.variables).await {
            Err(err) => {
                self.fail(run, err.to_string());
                Progress::Finished
            }
            Ok((Execution::Suspend(request), _)) => {
                run.status = RunStatus::Waiting;
                run.waiting = Some(Waiting {
                    action: action.id.clone(),
                    authorization_url: request.url.to_string(),
                    pending: request.pending,
                    since: started,
                    device: None,
                });
                Progress::Suspended
            }
            Ok((Execution::WaitDevice(authorization), _)) => {
                match crate::actions::device_waiting(action, *authorization, started) {
                    Ok(waiting) => {
                        run.status = RunStatus::Waiting;
                        run.waiting = Some(waiting);
                        Progress::Suspended
                    }
                    Err(err) => {
                        self.fail(run, err.to_string());
                        Progress::Finished
                    }
                }
            }
            Ok((Execution::Done(outcome), inputs)) => {
                self.complete(flow, run, action, started, inputs, outcome);
                if run.status == RunStatus::Running {
                    Progress::Continued
                } else {
                    Progress::Finished
                }
            }
        }
    }

    /// Steps until the run waits or ends.
    pub async fn run_until_blocked(&self, flow: &Flow, run: &mut Run) -> Progress {
        loop {
            match self.step(flow, run).await {
                Progress::Continued => {}
                other => return other,
            }
        }
    }

    /// The identity provider redirected back for a waiting run: finish the login and route on.
    /// The caller has matched `callback.state` to this run; the connector checks it again.
    pub async fn resume(&self, flow: &Flow, run: &mut Run, callback: &CallbackParams) -> Progress {
        let Some((action, waiting)) = self.waiting_action(flow, run) else {
            return Progress::Finished;
        };
        let server = action
            .oauth_server
            .as_deref()
            .and_then(|id| self.context.servers.get(id));
        let out = self
            .context
            .oauth
            .finish_user_login(server.as_ref(), &waiting.pending, callback)
            .await;
        self.after_wait(flow, run, action, waiting, token_outcome(out, true))
    }

    /// The pending authorization of a waiting run expired: a user login ends `-2`, a device
    /// login `-4`, and the run goes on.
    pub fn expire(&self, flow: &Flow, run: &mut Run) -> Progress {
        let Some((action, waiting)) = self.waiting_action(flow, run) else {
            return Progress::Finished;
        };
        let outcome = match &waiting.device {
            Some(device) => crate::actions::device_outcome(
                self.context.oauth.expire_device_login(),
                Some(device),
            ),
            None => token_outcome(self.context.oauth.expire_user_login(), true),
        };
        self.after_wait(flow, run, action, waiting, outcome)
    }

    /// Cancels a run that has not ended.
    pub fn cancel(&self, run: &mut Run, reason: &str) -> bool {
        if run.status.is_final() {
            return false;
        }
        run.waiting = None;
        self.finish(run, RunStatus::Cancelled, Some(reason.to_owned()));
        true
    }

    pub(crate) fn waiting_action<'f>(
        &self,
        flow: &'f Flow,
        run: &mut Run,
    ) -> Option<(&'f Action, Waiting)> {
        if run.status != RunStatus::Waiting {
            return None;
        }
        let waiting = run.waiting.take()?;
        match flow.actions.get(&waiting.action) {
            Some(action) => Some((action, waiting)),
            None => {
                self.fail(
                    run,
                    format!("the waiting action `{}` is not in the flow", waiting.action),
                );
                None
            }
        }
    }

    pub(crate) fn after_wait(
        &self,
        flow: &Flow,
        run: &mut Run,
        action: &Action,
        waiting: Waiting,
        outcome: Outcome,
    ) -> Progress {
        run.status = RunStatus::Running;
        let inputs =
            crate::inputs::Resolved::with_limits(action, &run.variables, &self.context.limits)
                .masked();
        self.complete(flow, run, action, waiting.since, inputs, outcome);
        if run.status == RunStatus::Running {
            Progress::Continued
        } else {
            Progress::Finished
        }
    }

    /// Records the action, writes its mapped outputs and routes on its status code — unless
    /// the run now holds more than `run_data_limit`, which fails it.
    fn complete(
        &self,
        flow: &Flow,
        run: &mut Run,
        action: &Action,
        started: OffsetDateTime,
        inputs: Map<String, Value>,
        mut outcome: Outcome,
    ) {
        self.record(run, action, started, inputs, &outcome);
        // Each output is moved into its variable: a large body is held once, not copied.
        for (output, variable) in &action.outputs {
            let secret = action.spec.output(output).is_some_and(|p| p.secret);
            let value = Val::for_variable(flow, variable, outcome.take_output(output), secret);
            run.variables.set(variable.clone(), value);
        }
        if self.over_budget(run, format_args!("after `{}`", action.id)) {
            return;
        }
        self.route(flow, run, &action.id, outcome.status_code);
    }

    /// Fails the run when its variables and monitor records hold more than `run_data_limit`
    /// bytes; `when` says where the run is (``after `fetch` ``), formatted only then.
    fn over_budget(&self, run: &mut Run, when: std::fmt::Arguments<'_>) -> bool {
        let held = run.variables.data_bytes() + run.record_bytes;
        if held <= self.context.limits.run_data {
            return false;
        }
        self.fail(
            run,
            format!(
                "run_data_limit exceeded {when}: the run's variables and monitor records hold {held} bytes, the limit is {} bytes",
                self.context.limits.run_data
            ),
        );
        true
    }

    fn record(
        &self,
        run: &mut Run,
        action: &Action,
        started: OffsetDateTime,
        inputs: Map<String, Value>,
        outcome: &Outcome,
    ) {
        let ended = self.clock.now();
        let duration = (ended - started).whole_milliseconds().max(0);
        let limit = self.context.limits.monitor_value;
        let record = ActionRecord {
            action: action.id.clone(),
            kind: action.spec.kind,
            oauth_server: action.oauth_server.clone(),
            status_code: Some(outcome.status_code),
            started_at: started,
            duration_ms: u64::try_from(duration).unwrap_or(u64::MAX),
            inputs: inputs
                .into_iter()
                .map(|(name, value)| {
                    let shown = crate::monitor::compact(&value, limit);
                    (name, shown)
                })
                .collect(),
            outputs: outcome.masked(action, limit),
            error: outcome.error.clone(),
            warnings: outcome.warnings.clone(),
            response: outcome
                .response
                .iter()
                .map(|(name, value)| (name.clone(), crate::monitor::compact(value, limit)))
                .collect(),
        };
        run.record_bytes += crate::monitor::json_len(&record);
        run.records.push(record);
    }

    /// Chooses the next node: the first step from `from` whose condition holds.
    fn route(&self, flow: &Flow, run: &mut Run, from: &str, status_code: i32) {
        // Copied only when a condition needs them: the variables may hold large values.
        let mut variables = None;
        let mut tried = Vec::new();
        for step in flow.steps_from(from) {
            let holds = match &step.when {
                Condition::Always => true,
                Condition::Successful => status_code >= 0,
                Condition::NotSuccessful => status_code < 0,
                Condition::Expr(expr) => {
                    match expr.evaluate(variables.get_or_insert_with(|| run.variables.exposed())) {
                        Ok(holds) => holds,
                        Err(message) => {
                            self.fail(
                                run,
                                format!(
                                    "condition on the step from `{from}` to `{}`: {message}",
                                    step.to
                                ),
                            );
                            return;
                        }
                    }
                }
            };
            if holds {
                run.next = Some(step.to.clone());
                return;
            }
            tried.push(format!("{} -> {}", step.when.label(), step.to));
        }
        self.fail(
            run,
            format!(
                "no step from `{from}` holds (status code {status_code}; tried: {})",
                tried.join("; ")
            ),
        );
    }

    /// Ends a run as failed (an internal error, not a status code) with `reason`.
    pub fn fail(&self, run: &mut Run, reason: String) {
        tracing::warn!(run = %run.id, flow = %run.flow_id, %reason, "run failed");
        self.finish(run, RunStatus::Failed, Some(reason));
    }

    fn finish(&self, run: &mut Run, status: RunStatus, reason: Option<String>) {
        // Nothing reads an ended run's variables but the monitor, which shows large values as
        // summaries: keeping only those bounds what every ended run stores.
        run.variables.compact(self.context.limits.monitor_value);
        run.status = status;
        run.next = None;
        run.waiting = None;
        run.reason = reason;
        run.ended_at = Some(self.clock.now());
    }
}
