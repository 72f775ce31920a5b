//! Flows: versioned in the store, parsed once per version and kept in memory. A run records the
//! version it started with, so editing a flow never changes a run that is already under way.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use tokenflow_core::flow::{
    Flow, FlowError, FlowProblems, ParseOptions, check_flow_id, parse_flow,
};
use tokenflow_store::{FlowRow, Store};

use crate::error::RuntimeError;

/// The parsed flows.
#[derive(Debug)]
pub struct FlowCatalog {
    store: Arc<dyn Store>,
    parsed: RwLock<HashMap<(String, i64), Arc<Flow>>>,
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
        Self {
            store,
            parsed: RwLock::new(HashMap::new()),
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
        let options = ParseOptions {
            known_servers: Some(known_servers),
            max_steps_limit: self.max_steps_limit,
        };
        let parsed = parse_flow(file, yaml, &options).map_err(RuntimeError::InvalidFlow)?;
        if parsed.flow.id != id {
            return Err(RuntimeError::InvalidFlow(FlowProblems(vec![FlowError {
                file: file.to_owned(),
                line: 1,
                column: 1,
                message: format!(
                    "the flow's id `{}` differs from `{id}` in the URL",
                    parsed.flow.id
                ),
            }])));
        }
        let before = self.store.get_flow(id).await?;
        let row = self.store.put_flow(id, yaml, now).await?;
        let flow = Arc::new(parsed.flow);
        self.remember(id, row.version, flow.clone());
        let created = before.as_ref().is_none_or(|old| old.version != row.version);
        Ok(Accepted {
            row,
            flow,
            warnings: parsed.warnings,
            created,
        })
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
        let Some(row) = self.store.get_flow(id).await? else {
            return Ok(None);
        };
        Ok(Some((self.parse_row(&row)?, row.version)))
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
