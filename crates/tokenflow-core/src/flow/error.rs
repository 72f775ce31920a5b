//! Flow problems with their place in the file.

use std::fmt;

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
