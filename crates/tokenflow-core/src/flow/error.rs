//! Flow problems with their place in the file.

use std::fmt;

use serde_saphyr::Location;

/// One problem in a flow file, at a line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for FlowError {}

/// Every problem of a flow that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowProblems(pub Vec<FlowError>);

/// Most characters of an input a message quotes: the input may be of any length.
const EXCERPT_CHARS: usize = 64;

/// `text` for a message, cut to its first 64 characters (with `…`) when longer.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

impl fmt::Display for FlowProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FlowProblems {}

/// Collects problems while a flow is checked.
pub(super) struct Problems<'a> {
    file: &'a str,
    pub(super) errors: Vec<FlowError>,
    pub(super) warnings: Vec<FlowError>,
}

impl<'a> Problems<'a> {
    pub(super) fn new(file: &'a str) -> Self {
        Problems {
            file,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, at: Location, message: impl Into<String>) {
        self.errors.push(self.at(at, message));
    }

    pub(super) fn warning(&mut self, at: Location, message: impl Into<String>) {
        self.warnings.push(self.at(at, message));
    }

    fn at(&self, at: Location, message: impl Into<String>) -> FlowError {
        FlowError {
            file: self.file.to_owned(),
            line: at.line().max(1),
            column: at.column().max(1),
            message: message.into(),
        }
    }
}
