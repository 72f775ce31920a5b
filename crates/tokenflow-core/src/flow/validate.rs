//! Graph checks of a flow (docs/flows.md): every action reachable from `start`, and `stop` reachable from
//! every action, so that no run can get stuck by construction.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_saphyr::Location;

use super::catalog::ActionKind;
use super::error::Problems;
use super::model::{Flow, START, STOP};

pub(super) fn check_graph(
    flow: &Flow,
    locations: &BTreeMap<String, Location>,
    flow_location: Location,
    problems: &mut Problems<'_>,
) {
    let forward = reach(START, |node| {
        flow.steps_from(node).map(|s| s.to.as_str()).collect()
    });
    let ends: Vec<&str> = std::iter::once(STOP)
        .chain(
            flow.actions
                .values()
                .filter(|a| a.spec.kind == ActionKind::Stop)
                .map(|a| a.id.as_str()),
        )
        .collect();
    let mut backward = BTreeSet::new();
    for end in ends {
        backward.extend(reach(end, |node| {
            flow.steps
                .iter()
                .filter(|s| s.to == node)
                .map(|s| s.from.as_str())
                .collect()
        }));
    }

    if flow.steps_from(START).next().is_none() {
        problems.error(flow_location, "no step leaves `start`");
        return;
    }
    for (id, action) in &flow.actions {
        let at = locations.get(id).copied().unwrap_or(Location::UNKNOWN);
        if !forward.contains(id.as_str()) {
            problems.error(at, format!("action `{id}` is unreachable from `start`"));
        } else if !backward.contains(id.as_str()) {
            problems.error(at, format!("no path from action `{id}` reaches `stop`"));
        } else if action.spec.kind != ActionKind::Stop && flow.steps_from(id).next().is_none() {
            problems.error(at, format!("no step leaves action `{id}`"));
        }
    }
    if !backward.contains(START) && problems.errors.is_empty() {
        problems.error(flow_location, "no path from `start` reaches `stop`");
    }
}

fn reach<'a>(from: &'a str, next: impl Fn(&'a str) -> Vec<&'a str>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        for n in next(node) {
            if seen.insert(n) {
                queue.push_back(n);
            }
        }
    }
    seen
}
