//! A run's path over its flow, for the run page's diagram ([`super::diagram::render_run_svg`]):
//! which nodes the run reached and how each ended, and which steps it took in which order.
//!
//! Key design decision: the path is read back from the monitor records the page shows (the
//! latest [`tokenflow_runtime::runner::SHOWN_RECORDS`], or the page of earlier ones), not stored
//! on its own. So it costs no read and no write more, and it is bounded like the timeline; a
//! step's pass number is the number of the timeline entry it led to. Records name actions, not
//! steps: between two actions joined by several steps, the path takes the first in file order
//! whose condition the source's status code allows — the one the engine took, unless an
//! expression step came before it (expressions cannot be evaluated again afterwards).

use std::collections::BTreeMap;

use tokenflow_core::flow::{ActionKind, Condition, Flow, START, STOP};

/// What a run did at one node of its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Its latest execution ended with a status code ≥ 0 (docs/flows.md, "Steps and routing").
    Successful,
    /// Its latest execution ended with a status code < 0.
    NotSuccessful,
    /// Reached without an outcome of its own: `start`, `stop`, a named `stop`.
    Reached,
    /// The run waits here for a person to sign in.
    Waiting,
    /// The run is executing it now.
    Running,
    NotReached,
}

impl NodeState {
    /// The `data-state` value, also the stylesheet's hook.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Successful => "successful",
            NodeState::NotSuccessful => "not-successful",
            NodeState::Reached => "reached",
            NodeState::Waiting => "waiting",
            NodeState::Running => "running",
            NodeState::NotReached => "not-reached",
        }
    }
}

/// One node's mark: its state, a tooltip line, and where its timeline entry is.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeMark {
    pub state: NodeState,
    pub title: String,
    /// A fragment link (`#action-3`) to the node's latest timeline entry.
    pub href: Option<String>,
}

/// A run's path over its flow: marked nodes by id, and per step (its index in the flow's
/// `steps`) the numbers of the passes that took it, in order. Nodes without a mark are drawn as
/// not reached, steps without passes as not taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMarks {
    pub nodes: BTreeMap<String, NodeMark>,
    pub steps: BTreeMap<usize, Vec<u64>>,
}

/// One monitor record as the path needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    /// The record's sequence number (0 for the run's first action).
    pub seq: u64,
    pub action: &'a str,
    pub status_code: Option<i64>,
}

/// Where the run is, beyond its records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Position<'a> {
    /// The action the run waits at (a login).
    pub waiting: Option<&'a str>,
    /// The node the run executes next, while it runs.
    pub running: Option<&'a str>,
    /// The run completed, so a last action that is not a named `stop` led to `stop`.
    pub completed: bool,
    /// The records shown are the run's latest: the run's position follows the last of them.
    pub latest: bool,
}

/// The marks of `entries` (in order, consecutive sequence numbers) over `flow`.
pub fn marks(flow: &Flow, entries: &[Entry<'_>], at: Position<'_>) -> RunMarks {
    let (mut marks, mut counts) = (RunMarks::default(), BTreeMap::new());
    // The node before the first entry is known only when that entry is the run's first.
    let mut previous: Option<(&str, Option<i64>)> = match entries.first() {
        Some(first) if first.seq > 0 => None,
        _ => Some((START, Some(0))),
    };
    if previous.is_some() {
        mark(
            &mut marks,
            START,
            NodeState::Reached,
            "the run started here",
            None,
        );
    }
    for entry in entries {
        let number = entry.seq + 1;
        if let Some((from, code)) = previous {
            take(&mut marks, flow, (from, code), entry.action, number);
        }
        let kind = flow.actions.get(entry.action).map(|a| a.spec.kind);
        let state = match entry.status_code {
            _ if kind == Some(ActionKind::Stop) => NodeState::Reached,
            Some(code) if code >= 0 => NodeState::Successful,
            Some(_) => NodeState::NotSuccessful,
            None => NodeState::Reached,
        };
        let passes = counts.entry(entry.action).or_insert(0u64);
        *passes += 1;
        let code = entry
            .status_code
            .map_or("none".to_owned(), |c| c.to_string());
        let title =
            format!("{passes}× executed, the last as step {number} with status code {code}");
        let href = Some(format!("#action-{number}"));
        mark(&mut marks, entry.action, state, &title, href);
        previous = Some((entry.action, entry.status_code));
    }
    if !at.latest {
        return marks;
    }
    let next = entries.last().map_or(0, |e| e.seq + 1) + 1;
    let ended_at_stop = entries.last().is_some_and(|e| {
        let kind = flow.actions.get(e.action).map(|a| a.spec.kind);
        at.completed && kind != Some(ActionKind::Stop)
    });
    let (node, state, title) = match (at.waiting, at.running) {
        (Some(action), _) => (
            action,
            NodeState::Waiting,
            "the run waits here for a sign-in",
        ),
        (None, Some(node)) if node != STOP => (node, NodeState::Running, "the run executes it now"),
        (None, Some(_)) => (STOP, NodeState::Reached, "the run ends here"),
        (None, None) if ended_at_stop => (STOP, NodeState::Reached, "the run ended here"),
        (None, None) => return marks,
    };
    if let Some(from) = previous {
        take(&mut marks, flow, from, node, next);
    }
    let title = match marks.nodes.get(node) {
        Some(before) => format!("{title}; before: {}", before.title),
        None => title.to_owned(),
    };
    let href = marks.nodes.get(node).and_then(|m| m.href.clone());
    mark(&mut marks, node, state, &title, href);
    marks
}

fn mark(marks: &mut RunMarks, node: &str, state: NodeState, title: &str, href: Option<String>) {
    let mark = NodeMark {
        state,
        title: title.to_owned(),
        href,
    };
    marks.nodes.insert(node.to_owned(), mark);
}

/// Records that the run went from `from` (which ended with `code`) to `to` as step `number`.
fn take(marks: &mut RunMarks, flow: &Flow, from: (&str, Option<i64>), to: &str, number: u64) {
    let (from, code) = from;
    let allows = |when: &Condition| match when {
        Condition::Successful => code.is_none_or(|c| c >= 0),
        Condition::NotSuccessful => code.is_some_and(|c| c < 0),
        Condition::Always | Condition::Expr(_) => true,
    };
    let joining = || (flow.steps.iter().enumerate()).filter(|(_, s)| s.from == from && s.to == to);
    let step = (joining()
        .find(|(_, s)| allows(&s.when))
        .or_else(|| joining().next()))
    .map(|(i, _)| i);
    if let Some(step) = step {
        marks.steps.entry(step).or_default().push(number);
    }
}

#[cfg(test)]
mod tests {
    use tokenflow_core::flow::{ParseOptions, parse_flow};

    use super::*;

    const FLOW: &str = r#"id: f
variables: { items: {}, more: {} }
actions:
  login: { type: extract_json }
  peel: { type: extract_json }
  failed: { type: stop }
steps:
  - { from: start, to: login }
  - { from: login, to: peel, when: "more == true" }
  - { from: login, to: peel, when: successful }
  - { from: login, to: failed, when: not_successful }
  - { from: peel, to: peel, when: "items != null" }
  - { from: peel, to: stop }
"#;

    fn flow() -> Flow {
        parse_flow("f.yaml", FLOW, &ParseOptions::default())
            .unwrap()
            .flow
    }

    fn entries<'a>(path: &[(&'a str, i64)], first: u64) -> Vec<Entry<'a>> {
        let numbered = path.iter().zip(first..);
        numbered
            .map(|(&(action, code), seq)| Entry {
                seq,
                action,
                status_code: Some(code),
            })
            .collect()
    }

    fn state(marks: &RunMarks, node: &str) -> Option<NodeState> {
        marks.nodes.get(node).map(|m| m.state)
    }

    #[test]
    fn a_failure_branch_marks_its_step_and_leaves_the_other_branch_unmarked() {
        let latest = Position {
            completed: true,
            latest: true,
            ..Position::default()
        };
        let marks = marks(
            &flow(),
            &entries(&[("login", -2), ("failed", 0)], 0),
            latest,
        );
        assert_eq!(state(&marks, "start"), Some(NodeState::Reached));
        assert_eq!(state(&marks, "login"), Some(NodeState::NotSuccessful));
        assert_eq!(
            state(&marks, "failed"),
            Some(NodeState::Reached),
            "a named end"
        );
        assert_eq!((state(&marks, "peel"), state(&marks, "stop")), (None, None));
        let steps: Vec<_> = marks.steps.into_iter().collect();
        assert_eq!(steps, [(0, vec![1]), (3, vec![2])]);
    }

    #[test]
    fn a_loop_numbers_each_pass_and_the_end_follows_the_last_action() {
        let path = [("login", 0), ("peel", 0), ("peel", 0), ("peel", 1)];
        let at = Position {
            completed: true,
            latest: true,
            ..Position::default()
        };
        let marks = marks(&flow(), &entries(&path, 0), at);
        let steps: Vec<_> = marks.steps.clone().into_iter().collect();
        // login -> peel: the expression step comes first and cannot be told apart afterwards.
        assert_eq!(
            steps,
            [(0, vec![1]), (1, vec![2]), (4, vec![3, 4]), (5, vec![5])]
        );
        let peel = &marks.nodes["peel"];
        assert_eq!(
            (peel.state, peel.href.as_deref()),
            (NodeState::Successful, Some("#action-4"))
        );
        assert!(
            peel.title.starts_with("3× executed, the last as step 4"),
            "{}",
            peel.title
        );
        assert_eq!(state(&marks, "stop"), Some(NodeState::Reached));
    }

    #[test]
    fn the_waiting_action_is_marked_with_the_step_that_led_to_it() {
        let at = Position {
            waiting: Some("login"),
            latest: true,
            ..Position::default()
        };
        let marks = marks(&flow(), &[], at);
        assert_eq!(state(&marks, "login"), Some(NodeState::Waiting));
        assert_eq!(marks.steps.into_iter().collect::<Vec<_>>(), [(0, vec![1])]);
    }

    #[test]
    fn a_running_run_marks_the_node_it_executes_and_a_failed_run_marks_nothing_after() {
        let path = entries(&[("login", 0)], 0);
        let running = Position {
            running: Some("peel"),
            latest: true,
            ..Position::default()
        };
        let marked = marks(&flow(), &path, running);
        assert_eq!(state(&marked, "peel"), Some(NodeState::Running));
        assert_eq!(
            marked.steps.get(&1),
            Some(&vec![2]),
            "the first step it can have been"
        );
        let failed = Position {
            latest: true,
            ..Position::default()
        };
        let marked = marks(&flow(), &path, failed);
        assert_eq!((state(&marked, "peel"), marked.steps.len()), (None, 1));
    }

    #[test]
    fn an_earlier_page_numbers_from_its_first_record_and_marks_neither_start_nor_the_end() {
        let at = Position {
            completed: true,
            ..Position::default()
        };
        let marks = marks(&flow(), &entries(&[("peel", 0), ("peel", 0)], 100), at);
        assert_eq!(state(&marks, "start"), None);
        assert_eq!(state(&marks, "stop"), None);
        assert_eq!(
            marks.steps.into_iter().collect::<Vec<_>>(),
            [(4, vec![102])]
        );
    }
}
