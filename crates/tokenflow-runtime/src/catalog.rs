//! Flows: versioned in the store, parsed once per version and kept in memory. A run records the
//! version it started with, so editing a flow never changes a run that is already under way.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokenflow_core::flow::parse::Parsed;
use tokenflow_core::flow::{
    Flow, FlowError, FlowProblems, ParseOptions, check_flow_id, parse_flow,
};
use tokenflow_store::{FlowChange, FlowRow, Store};

use crate::error::RuntimeError;

/// The parsed flows.
///
/// Each flow's newest version is kept in memory too, so that starting a run reads nothing
/// (ARCHITECTURE.md, "Flows in memory"): when no other process writes the store's flows (SQLite),
/// always; when others may (PostgreSQL), only while the store's change feed is listening
/// ([`FlowCatalog::apply`], fed by the runtime's flow watch). A change drops the flow's entry; a
/// lost feed drops them all and the newest version is read from the store until it listens
/// again. `generation` counts those drops, so that a read that raced with one is not kept.
#[derive(Debug)]
pub struct FlowCatalog {
    store: Arc<dyn Store>,
    parsed: RwLock<HashMap<(String, i64), Arc<Flow>>>,
    newest: RwLock<HashMap<String, (Arc<Flow>, i64)>>,
    /// Whether `newest` may be served.
    trusted: AtomicBool,
    generation: AtomicU64,
    /// The largest `max_steps` a new flow may declare (`max_steps_limit`).
    max_steps_limit: u32,
}

/// A flow accepted by [`FlowCatalog::put`].
#[derive(Debug)]
pub struct Accepted {
    pub row: FlowRow,
    pub flow: Arc<Flow>,
    pub warnings: Vec<FlowError>,
    pub created: bool,
}

impl FlowCatalog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        // Without a change feed nobody else writes the flows: what this catalogue stores is all.
        let local = store.flow_changes().is_none();
        Self {
            store,
            parsed: RwLock::new(HashMap::new()),
            newest: RwLock::new(HashMap::new()),
            trusted: AtomicBool::new(local),
            generation: AtomicU64::new(0),
            max_steps_limit: tokenflow_core::limits::DEFAULT_MAX_STEPS_LIMIT,
        }
    }

    /// Sets the largest `max_steps` a flow may declare to be accepted.
    pub fn with_max_steps_limit(mut self, limit: u32) -> Self {
        self.max_steps_limit = limit;
        self
    }

    /// Validates `yaml` (its `id` must be `id`) and stores it as the flow's newest version.
    pub async fn put(
        &self,
        id: &str,
        yaml: &str,
        file: &str,
        known_servers: BTreeSet<String>,
        now: time::OffsetDateTime,
    ) -> Result<Accepted, RuntimeError> {
        // The id of the URL is checked like a flow file's `id:` before the YAML is read.
        check_flow_id(id).map_err(RuntimeError::InvalidInput)?;
        let parsed = self
            .validate(Some(id), yaml, file, known_servers)
            .map_err(RuntimeError::InvalidFlow)?;
        let before = self.store.get_flow(id).await?;
        let generation = self.generation.load(Ordering::Acquire);
        let row = self.store.put_flow(id, yaml, now).await?;
        let flow = Arc::new(parsed.flow);
        self.remember(id, row.version, flow.clone());
        self.keep_newest(id, generation, &flow, row.version);
        let created = before.as_ref().is_none_or(|old| old.version != row.version);
        Ok(Accepted {
            row,
            flow,
            warnings: parsed.warnings,
            created,
        })
    }

    /// Validates `yaml` as [`FlowCatalog::put`] would, storing nothing: every problem with its
    /// line and column, or the flow with its warnings. With `id`, the YAML's `id` must equal it.
    pub fn validate(
        &self,
        id: Option<&str>,
        yaml: &str,
        file: &str,
        known_servers: BTreeSet<String>,
    ) -> Result<Parsed, FlowProblems> {
        let options = ParseOptions {
            known_servers: Some(known_servers),
            max_steps_limit: self.max_steps_limit,
        };
        let parsed = parse_flow(file, yaml, &options)?;
        match id {
            Some(id) if parsed.flow.id != id => Err(FlowProblems(vec![FlowError {
                file: file.to_owned(),
                line: 1,
                column: 1,
                message: format!(
                    "the flow's id `{}` differs from `{id}` in the URL",
                    parsed.flow.id
                ),
            }])),
            _ => Ok(parsed),
        }
    }

    /// Loads every `*.yaml`/`*.yml` of `dir` into the store; all problems of all files at once.
    pub async fn load_dir(
        &self,
        dir: &Path,
        known_servers: &BTreeSet<String>,
        now: time::OffsetDateTime,
    ) -> Result<Vec<FlowError>, Vec<String>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(warnings);
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .collect();
        files.sort();
        for file in files {
            let name = file.display().to_string();
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(err) => {
                    problems.push(format!("{name}: {err}"));
                    continue;
                }
            };
            let options = ParseOptions {
                known_servers: Some(known_servers.clone()),
                max_steps_limit: self.max_steps_limit,
            };
            let id = match parse_flow(&name, &text, &options) {
                Ok(parsed) => parsed.flow.id,
                Err(errors) => {
                    problems.extend(errors.0.iter().map(ToString::to_string));
                    continue;
                }
            };
            match self
                .put(&id, &text, &name, known_servers.clone(), now)
                .await
            {
                Ok(accepted) => warnings.extend(accepted.warnings),
                Err(err) => problems.push(format!("{name}: {err}")),
            }
        }
        if problems.is_empty() {
            Ok(warnings)
        } else {
            Err(problems)
        }
    }

    /// The newest version of a flow, parsed.
    pub async fn current(&self, id: &str) -> Result<Option<(Arc<Flow>, i64)>, RuntimeError> {
        if self.trusted.load(Ordering::Acquire)
            && let Some(newest) = self.newest.read().ok().and_then(|n| n.get(id).cloned())
        {
            return Ok(Some(newest));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(row) = self.store.get_flow(id).await? else {
            return Ok(None);
        };
        let flow = self.parse_row(&row)?;
        self.keep_newest(id, generation, &flow, row.version);
        Ok(Some((flow, row.version)))
    }

    /// Takes a change told by the store's feed ([`FlowStore::flow_changes`]).
    pub fn apply(&self, change: &FlowChange) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        match change {
            FlowChange::Changed(id) => {
                if let Ok(mut newest) = self.newest.write() {
                    newest.remove(id);
                }
            }
            FlowChange::Listening | FlowChange::Lost => {
                if let Ok(mut newest) = self.newest.write() {
                    newest.clear();
                }
                self.trusted
                    .store(*change == FlowChange::Listening, Ordering::Release);
            }
        }
    }

    /// Keeps `flow` as the newest version of `id` unless a change was told since `generation`
    /// was read (the version read may be older than that change) or an equal or newer version
    /// is kept already.
    fn keep_newest(&self, id: &str, generation: u64, flow: &Arc<Flow>, version: i64) {
        if !self.trusted.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut newest) = self.newest.write() else {
            return;
        };
        // Checked under the lock `apply` takes, so no change slips in between.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if newest.get(id).is_none_or(|(_, kept)| *kept < version) {
            newest.insert(id.to_owned(), (flow.clone(), version));
        }
    }

    /// One version of a flow, parsed.
    pub async fn version(&self, id: &str, version: i64) -> Result<Option<Arc<Flow>>, RuntimeError> {
        if let Some(flow) = self.cached(id, version) {
            return Ok(Some(flow));
        }
        let Some(row) = self.store.get_flow_version(id, version).await? else {
            return Ok(None);
        };
        Ok(Some(self.parse_row(&row)?))
    }

    /// The newest version of every flow, parsed.
    pub async fn all(&self) -> Result<Vec<(Arc<Flow>, FlowRow)>, RuntimeError> {
        let mut flows = Vec::new();
        for row in self.store.list_flows().await? {
            flows.push((self.parse_row(&row)?, row));
        }
        Ok(flows)
    }

    fn parse_row(&self, row: &FlowRow) -> Result<Arc<Flow>, RuntimeError> {
        if let Some(flow) = self.cached(&row.id, row.version) {
            return Ok(flow);
        }
        // Stored flows were valid when stored; servers may have changed since, which is only a
        // warning, so parse without the server check. `max_steps_limit` may have been lowered
        // since too: such a flow still loads, and the engine never executes more than the limit.
        let options = ParseOptions {
            max_steps_limit: u32::MAX,
            ..ParseOptions::default()
        };
        let parsed = parse_flow(&format!("{}@{}", row.id, row.version), &row.yaml, &options)
            .map_err(RuntimeError::unreadable)?;
        let flow = Arc::new(parsed.flow);
        self.remember(&row.id, row.version, flow.clone());
        Ok(flow)
    }

    fn cached(&self, id: &str, version: i64) -> Option<Arc<Flow>> {
        self.parsed
            .read()
            .ok()?
            .get(&(id.to_owned(), version))
            .cloned()
    }

    fn remember(&self, id: &str, version: i64, flow: Arc<Flow>) {
        if let Ok(mut parsed) = self.parsed.write() {
            parsed.insert((id.to_owned(), version), flow);
        }
    }
}
