//! Action inputs that remember whether the flow assigned them.
//!
//! docs/connectors.md (Thinkwise's rule since Indicium 2024.1.11): an assigned `Scope` is used even when it
//! is empty; only an unassigned one falls back to the OAuth server's `scope`. `Option<String>`
//! cannot say "assigned, and empty" apart from "assigned" without a convention, so the model says
//! it in its own type.

/// An action input as the flow left it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Input<T> {
    /// The flow does not mention this input.
    #[default]
    Unassigned,
    /// The flow assigned a value (a constant or a variable's value), possibly empty.
    Assigned(T),
}

impl<T> Input<T> {
    pub fn assigned(&self) -> Option<&T> {
        match self {
            Input::Unassigned => None,
            Input::Assigned(value) => Some(value),
        }
    }

    pub fn is_assigned(&self) -> bool {
        matches!(self, Input::Assigned(_))
    }
}

impl Input<String> {
    /// The effective scope of docs/connectors.md: the assigned value, even if empty; else the fallback.
    pub fn or_fallback<'a>(&'a self, fallback: Option<&'a str>) -> &'a str {
        match self {
            Input::Assigned(value) => value.as_str(),
            Input::Unassigned => fallback.unwrap_or(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigned_empty_scope_wins_over_the_server_scope() {
        let input = Input::Assigned(String::new());
        assert_eq!(input.or_fallback(Some("api:read")), "");
    }

    #[test]
    fn unassigned_scope_falls_back_to_the_server_scope() {
        let input: Input<String> = Input::Unassigned;
        assert_eq!(input.or_fallback(Some("api:read")), "api:read");
        assert_eq!(input.or_fallback(None), "");
    }

    #[test]
    fn assigned_scope_is_used_as_given() {
        let input = Input::Assigned("User.Read".to_owned());
        assert_eq!(input.or_fallback(Some("api:read")), "User.Read");
    }
}
