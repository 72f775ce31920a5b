//! `tokenflow flows validate <path>`: every problem of every flow file, with file:line:column.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use tokenflow_core::flow::{ParseOptions, parse_flow};
use tokenflow_core::limits::DEFAULT_MAX_STEPS_LIMIT;

#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// Validates a flow file, or every *.yaml / *.yml file of a directory.
    Validate {
        /// A flow file or a directory of flow files.
        path: PathBuf,
    },
}

pub fn run(command: FlowsCommand, config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let FlowsCommand::Validate { path } = command;
    let config = crate::load_config_if_any(config)?;
    let options = ParseOptions {
        max_steps_limit: config
            .as_ref()
            .map_or(DEFAULT_MAX_STEPS_LIMIT, |c| c.run_limits.max_steps),
        known_servers: config.map(|c| c.oauth_servers.keys().cloned().collect()),
    };
    let files = flow_files(&path)?;
    if files.is_empty() {
        anyhow::bail!("no *.yaml or *.yml files in {}", path.display());
    }
    let mut failed = 0;
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        match parse_flow(&file.display().to_string(), &text, &options) {
            Ok(parsed) => {
                for warning in &parsed.warnings {
                    println!("warning: {warning}");
                }
                println!("ok: {} (flow `{}`)", file.display(), parsed.flow.id);
            }
            Err(problems) => {
                failed += 1;
                for problem in &problems.0 {
                    println!("error: {problem}");
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} flow file(s) are invalid", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The flow files at `path`, sorted.
pub fn flow_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
    {
        let file = entry?.path();
        let is_yaml = file
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if is_yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}
