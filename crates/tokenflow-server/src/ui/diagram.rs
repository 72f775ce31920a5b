//! The flow diagram: renders a validated [`Flow`] as one self-contained SVG (no fonts, CSS or
//! scripts from elsewhere), in the spirit of the Thinkwise process-flow modeler.
//!
//! This module owns layout and drawing only; the graph rules live in `tokenflow-core`.
//!
//! Key design decision: a small layered (Sugiyama-style) layout written here instead of a layout
//! dependency. Columns are the longest path from `start` over the graph without its DFS back
//! edges, so every remaining edge points right; edges spanning several columns get invisible
//! waypoints so they pass between nodes, never through them; one barycenter sweep orders each
//! column; back edges (loops) climb to a lane of their own above the drawing, so no node hides
//! them. Everything iterates in file order, so the same flow always gives the same string.
//!
//! A run's page draws the same layout with the run's path over it ([`render_run_svg`], the marks
//! come from [`super::run_path`]): colours are SVG attributes, not CSS, so the drawing reads the same
//! without the stylesheet; only the waiting action's pulse is the stylesheet's.

use std::collections::BTreeMap;

use tokenflow_core::flow::{Condition, Flow, START, STOP};

use super::run_path::{NodeState, RunMarks};

const MARGIN: f64 = 16.0;
const NODE_H: f64 = 48.0;
/// Node height plus room below it for a circle's label and above it for a self-loop.
const SLOT_H: f64 = 96.0;
/// Radius of the start and end circles.
const R: f64 = 18.0;
/// Vertical distance between the lanes of back edges.
const LANE: f64 = 16.0;
/// Longer ids and labels are cut (the full text stays in the `<title>` tooltip).
const ID_CHARS: usize = 32;
const LABEL_CHARS: usize = 36;
/// (class suffix, colour, legend text), indexed by [`style`].
const COLOURS: [(&str, &str, &str); 4] = [
    ("successful", "#2e7d32", "successful"),
    ("not-successful", "#c62828", "not successful"),
    ("always", "#1565c0", "always"),
    ("expression", "#555", "condition"),
];
/// The colour of the steps a run did not take, and of the nodes it did not reach.
const GREY: &str = "#bdbdbd";
/// Pass numbers shown on one edge; the `<title>` has them all.
const PASSES_SHOWN: usize = 6;

/// A node's (fill, stroke, text colour) for a run's state.
fn node_colours(state: NodeState) -> (&'static str, &'static str, &'static str) {
    match state {
        NodeState::Successful => ("#e8f5e9", "#2e7d32", "#212121"),
        NodeState::NotSuccessful => ("#ffebee", "#c62828", "#212121"),
        NodeState::Reached => ("#eceff1", "#37474f", "#212121"),
        NodeState::Waiting => ("#fff3e0", "#ef6c00", "#212121"),
        NodeState::Running => ("#e3f2fd", "#1565c0", "#212121"),
        NodeState::NotReached => ("#fafafa", GREY, "#9e9e9e"),
    }
}

/// A coordinate rounded to one decimal: short to print, and the same on every run.
fn num(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A point as `x y` for path data.
fn pt(x: f64, y: f64) -> String {
    format!("{} {}", num(x), num(y))
}

/// The flow as an SVG document; never fails, even for a flow that did not pass validation.
pub fn render_svg(flow: &Flow) -> String {
    render(flow, None)
}

/// The flow with a run's path: nodes coloured by their state, the steps taken numbered with
/// their passes, the rest grey; nodes link to their timeline entries.
pub fn render_run_svg(flow: &Flow, marks: &RunMarks) -> String {
    render(flow, Some(marks))
}

fn render(flow: &Flow, marks: Option<&RunMarks>) -> String {
    // Nodes are (id, type): `start`, the actions in file order, then `stop` if a step uses it.
    // `start` is drawn as a thin circle, `stop` and actions of type `stop` as bold ones.
    let mut nodes = vec![(START, START)];
    for (id, action) in &flow.actions {
        nodes.push((id.as_str(), action.spec.kind.as_str()));
    }
    if flow.steps.iter().any(|step| step.to == STOP) {
        nodes.push((STOP, STOP));
    }
    let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.0, i)).collect();
    let node_of = |name: &str| index.get(name).copied();
    // A step naming an unknown node cannot be drawn; validation reports it, so skip it here.
    // Each edge keeps its step's index in `flow.steps`, which the run's marks refer to.
    let edges: Vec<(usize, usize, &Condition, usize)> = (flow.steps.iter().enumerate())
        .filter_map(|(i, s)| Some((node_of(&s.from)?, node_of(&s.to)?, &s.when, i)))
        .collect();
    let n = nodes.len();
    let layer = layers(n, &edges);

    // Vertices are the nodes followed by the waypoints of edges that span several columns;
    // a chain lists a forward edge's vertices; back edges (but not self-loops) get lanes.
    let (mut vlayer, mut chains, mut back) = (layer.clone(), Vec::new(), Vec::new());
    for &(from, to, ..) in &edges {
        let mut chain = Vec::new();
        if layer[to] > layer[from] {
            chain.push(from);
            for l in layer[from] + 1..layer[to] {
                chain.push(vlayer.len());
                vlayer.push(l);
            }
            chain.push(to);
        }
        back.push(from != to && chain.is_empty());
        chains.push(chain);
    }
    let rows = order(&vlayer, &chains);

    // Sizes follow the longest id and expression label, so text fits its box and its gap.
    let longest_id = nodes.iter().map(|n| n.0.chars().count()).max();
    let col_w = (longest_id.unwrap_or(0).min(ID_CHARS) as f64 * 7.8 + 28.0).clamp(120.0, 300.0);
    let longest_label = (edges.iter())
        .filter_map(|e| expression(e.2).map(|s| s.chars().count().min(LABEL_CHARS)))
        .max();
    let gap = (longest_label.unwrap_or(0) as f64 * 6.0 + 48.0).clamp(96.0, 280.0);
    let nodes_top = MARGIN + back.iter().filter(|&&b| b).count() as f64 * LANE + 48.0;
    let tallest = rows.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let col_x = |l: usize| MARGIN + l as f64 * (col_w + gap);
    // Columns are centred vertically on the tallest one.
    let mut y = vec![0.0f64; vlayer.len()];
    for row in &rows {
        let offset = (tallest - row.len() as f64) * SLOT_H / 2.0;
        for (i, &v) in row.iter().enumerate() {
            y[v] = nodes_top + offset + i as f64 * SLOT_H + NODE_H / 2.0;
        }
    }
    let boxed = |v: usize| !matches!(nodes.get(v), Some((_, START | STOP)));
    let half = |v: usize| if boxed(v) { col_w / 2.0 } else { R };
    let cx = |v: usize| col_x(vlayer[v]) + col_w / 2.0;

    // Parallel edges are counted per (from, to) pair, in one pass so big flows stay linear.
    let mut totals: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for &(from, to, ..) in &edges {
        *totals.entry((from, to)).or_default() += 1.0;
    }
    let (mut seen, mut lanes, mut edge_svg) = (BTreeMap::new(), 0.0, String::new());
    for (e, &(from, to, when, step)) in edges.iter().enumerate() {
        let count: &mut f64 = seen.entry((from, to)).or_default();
        let parallel = *count;
        *count += 1.0;
        let (d, label, mark) = if from == to {
            // A self-loop arcs over the node's top; parallel ones arc higher.
            let top = y[from] - if boxed(from) { NODE_H / 2.0 } else { R };
            let (x, w, h) = (cx(from), half(from) / 2.0, 36.0 + 10.0 * parallel);
            let (a, b) = (pt(x + w, top), pt(x + w + 8.0, top - h));
            let (c, z) = (pt(x - w - 8.0, top - h), pt(x - w, top));
            let mark = cubic(
                [(x + w, top), (x + w + 8.0, top - h), (x - w - 8.0, top - h)],
                (x - w, top),
                0.2,
            );
            (
                format!("M{a} C{b} {c} {z}"),
                (x, top - 0.75 * h - 4.0),
                mark,
            )
        } else if back[e] {
            // Right into the gap after the source, up to its own lane, left, down in the gap
            // before the target, right into it, with rounded bends; leaving and entering above
            // the centre keeps it apart from forward edges.
            let lane = lanes;
            lanes += 1.0;
            let (jitter, lane_y) = ((lane % 4.0) * 5.0, MARGIN + 8.0 + lane * LANE);
            let rise = |v: usize| if boxed(v) { NODE_H / 4.0 } else { R / 2.0 };
            let (sx, sy) = (cx(from) + half(from), y[from] - rise(from));
            let (ex, ey) = (cx(to) - half(to), y[to] - rise(to));
            let xo = col_x(layer[from]) + col_w + gap / 2.0 + jitter;
            let xi = col_x(layer[to]) - gap / 2.0 - jitter;
            let (s, r) = (pt(sx, sy), 8.0);
            let (a, b, c) = (num(xo - r), pt(xo, sy), pt(xo, sy - r));
            let (d, e, f) = (num(lane_y + r), pt(xo, lane_y), pt(xo - r, lane_y));
            let (g, h, i) = (num(xi + r), pt(xi, lane_y), pt(xi, lane_y + r));
            let (j, k, m, z) = (num(ey - r), pt(xi, ey), pt(xi + r, ey), num(ex));
            let d = format!("M{s} H{a} Q{b} {c} V{d} Q{e} {f} H{g} Q{h} {i} V{j} Q{k} {m} H{z}");
            (
                d,
                ((xo + xi) / 2.0, lane_y - 4.0),
                (xi, (lane_y + ey) / 2.0),
            )
        } else {
            // Forward: curves with horizontal tangents between columns, straight across
            // waypoints; parallel edges get their ends spread apart so they never coincide.
            let total = totals.get(&(from, to)).copied().unwrap_or(1.0);
            let dy = (parallel - (total - 1.0) / 2.0) * 8.0;
            let (mut px, mut py) = (cx(from) + half(from), y[from] + dy);
            let (mut d, mut label) = (format!("M{}", pt(px, py)), (px, py));
            let mut mark = label;
            for (i, &v) in chains[e].iter().enumerate().skip(1) {
                let (qx, qy) = (cx(v) - half(v), if v == to { y[v] + dy } else { y[v] });
                let (mx, z) = ((px + qx) / 2.0, pt(qx, qy));
                d += &format!(" C{} {} {z}", pt(mx, py), pt(mx, qy));
                if i == 1 {
                    label = (mx, (py + qy) / 2.0 - 4.0);
                }
                // Pass numbers sit near the target, away from the condition's label.
                mark = cubic([(px, py), (mx, py), (mx, qy)], (qx, qy), 0.75);
                (px, py) = (qx + col_w, qy);
                if v >= n {
                    d += &format!(" L{}", pt(px, py));
                }
            }
            (d, label, mark)
        };
        let (from, to, text) = (esc(nodes[from].0), esc(nodes[to].0), esc(when.label()));
        let (class, mut colour, _) = style(when);
        let (mut arrow, mut width, mut passes) = (class, 1.5, String::new());
        let mut title = format!("{from} → {to}: {text}");
        match marks.map(|m| m.steps.get(&step).map_or(&[][..], Vec::as_slice)) {
            None => {}
            Some([]) => (colour, arrow) = (GREY, "not-taken"),
            Some(numbers) => {
                let list = numbers.iter().map(u64::to_string).collect::<Vec<_>>();
                title += &format!(" (taken as step {})", list.join(", "));
                passes = format!(" data-passes=\"{}\"", list.join(" "));
                width = 3.0;
            }
        }
        edge_svg += &format!(
            "<g class=\"edge edge-{class}\" data-from=\"{from}\" data-to=\"{to}\" \
             data-step=\"{step}\"{passes}><title>{title}</title><path d=\"{d}\" fill=\"none\" \
             stroke=\"{colour}\" stroke-width=\"{width}\" marker-end=\"url(#tf-arrow-{arrow})\"/>"
        );
        if let Some(numbers) = marks
            .and_then(|m| m.steps.get(&step))
            .filter(|n| !n.is_empty())
        {
            edge_svg += &pass_badge(numbers, mark, colour);
        }
        if let Some(source) = expression(when) {
            let (x, y, text) = (num(label.0), num(label.1), esc(&cut(source, LABEL_CHARS)));
            edge_svg += &format!(
                "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" font-size=\"10\" fill=\"{colour}\" \
                 stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{text}</text>"
            );
        }
        edge_svg += "</g>";
    }

    let mut node_svg = String::new();
    for (v, &(name, kind)) in nodes.iter().enumerate() {
        let (id, shown, kind_text) = (esc(name), esc(&cut(name, ID_CHARS)), esc(kind));
        let (x, cy) = (num(cx(v)), num(y[v]));
        let mark = marks.map(|m| m.nodes.get(name));
        let state = mark.map(|m| m.map_or(NodeState::NotReached, |m| m.state));
        let ((fill, line, ink), width): (_, f64) = match state {
            None => (("#fff", "#37474f", "#212121"), 1.5),
            Some(NodeState::NotReached) => (node_colours(NodeState::NotReached), 1.5),
            Some(state) => (node_colours(state), 3.0),
        };
        let data_state = state.map_or(String::new(), |s| format!(" data-state=\"{}\"", s.as_str()));
        let title = match mark.flatten() {
            Some(mark) => format!("{id} ({kind_text}): {}", esc(&mark.title)),
            None => format!("{id} ({kind_text})"),
        };
        node_svg += &format!(
            "<g class=\"node\" data-node=\"{id}\" data-kind=\"{kind_text}\"{data_state}>\
             <title>{title}</title>"
        );
        let href = mark.flatten().and_then(|m| m.href.as_deref());
        if let Some(href) = href {
            node_svg += &format!("<a href=\"{}\">", esc(href));
        }
        node_svg += &if boxed(v) {
            let (left, top, w) = (num(cx(v) - col_w / 2.0), num(cy - NODE_H / 2.0), num(col_w));
            let (y1, y2) = (num(cy - 3.0), num(cy + 13.0));
            let kind_ink = if state == Some(NodeState::NotReached) {
                GREY
            } else {
                "#607d8b"
            };
            format!(
                "<rect x=\"{left}\" y=\"{top}\" width=\"{w}\" height=\"{NODE_H}\" rx=\"8\" \
                 fill=\"{fill}\" stroke=\"{line}\" stroke-width=\"{width}\"/><text x=\"{x}\" \
                 y=\"{y1}\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"600\" \
                 fill=\"{ink}\">{shown}</text><text x=\"{x}\" y=\"{y2}\" text-anchor=\"middle\" \
                 font-size=\"10\" fill=\"{kind_ink}\">{kind_text}</text>"
            )
        } else {
            // The modeler's start is a thin circle and its end a bold one; the id goes below.
            let stroke = match state {
                _ if kind == STOP => 4.0,
                None | Some(NodeState::NotReached) => 1.0,
                Some(_) => 2.0,
            };
            let below = num(cy + R + 14.0);
            format!(
                "<circle cx=\"{x}\" cy=\"{cy}\" r=\"{R}\" fill=\"{fill}\" stroke=\"{line}\" \
                 stroke-width=\"{stroke}\"/><text x=\"{x}\" y=\"{below}\" text-anchor=\"middle\" \
                 font-size=\"12\" fill=\"{ink}\">{shown}</text>"
            )
        };
        node_svg += if href.is_some() { "</a></g>" } else { "</g>" };
    }

    let nodes_bottom = nodes_top + tallest * SLOT_H;
    let layers_w = col_x(rows.len()) - gap / 2.0 + 24.0;
    let w = num((layers_w + MARGIN).max(4.0 * 130.0 + 2.0 * MARGIN));
    let (h, id) = (num(nodes_bottom + 24.0 + MARGIN), esc(&flow.id));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Process flow {id}\" \
         font-family=\"sans-serif\" data-flow=\"{id}\"><title>Process flow {id}</title><defs>"
    );
    // One arrowhead per colour: `context-stroke` is not supported everywhere yet. Sized in user
    // units, so the thicker lines of the steps a run took keep the same arrowheads.
    let grey = marks.map(|_| ("not-taken", GREY, ""));
    for (class, colour, _) in COLOURS.into_iter().chain(grey) {
        svg += &format!(
            "<marker id=\"tf-arrow-{class}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
             markerUnits=\"userSpaceOnUse\" markerWidth=\"10.5\" markerHeight=\"10.5\" \
             orient=\"auto\">\
             <path d=\"M0 0 L10 5 L0 10 z\" fill=\"{colour}\"/></marker>"
        );
    }
    // Edges first, so node fills cover line ends and labels stay readable.
    svg += &format!("</defs><g class=\"edges\">{edge_svg}</g><g class=\"nodes\">{node_svg}</g>");
    svg += "<g class=\"legend\" font-size=\"11\" fill=\"#212121\">";
    for (i, (_, colour, text)) in COLOURS.iter().enumerate() {
        let x = MARGIN + i as f64 * 130.0;
        let (x1, x2, x3) = (num(x), num(x + 24.0), num(x + 30.0));
        let (y1, y2) = (num(nodes_bottom + 8.0), num(nodes_bottom + 12.0));
        svg += &format!(
            "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y1}\" stroke=\"{colour}\" \
             stroke-width=\"2\"/><text x=\"{x3}\" y=\"{y2}\">{text}</text>"
        );
    }
    svg + "</g></svg>"
}

/// The point at `t` of the cubic Bézier curve from `p[0]` over `p[1]`, `p[2]` to `end`.
fn cubic(p: [(f64, f64); 3], end: (f64, f64), t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
    let x = a * p[0].0 + b * p[1].0 + c * p[2].0 + d * end.0;
    (x, a * p[0].1 + b * p[1].1 + c * p[2].1 + d * end.1)
}

/// The pass numbers of a step taken, on a pill in the edge's colour: all of them up to
/// [`PASSES_SHOWN`], else the first and the last ones around an ellipsis.
fn pass_badge(numbers: &[u64], at: (f64, f64), colour: &str) -> String {
    let list = |n: &[u64]| n.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let text = if numbers.len() <= PASSES_SHOWN {
        list(numbers)
    } else {
        let keep = PASSES_SHOWN / 2;
        let head = list(&numbers[..keep]);
        format!("{head} … {}", list(&numbers[numbers.len() - keep..]))
    };
    let w = text.chars().count() as f64 * 6.2 + 10.0;
    let (left, top, w) = (num(at.0 - w / 2.0), num(at.1 - 8.0), num(w));
    let (x, y) = (num(at.0), num(at.1 + 3.5));
    format!(
        "<rect class=\"passes\" x=\"{left}\" y=\"{top}\" width=\"{w}\" height=\"16\" rx=\"8\" \
         fill=\"{colour}\"/><text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" font-size=\"10\" \
         font-weight=\"700\" fill=\"#fff\">{text}</text>"
    )
}

/// Column of every node: longest path from `start` once DFS back edges are set aside (so loops
/// cannot make it infinite); nodes `start` cannot reach share one column after the others.
fn layers(n: usize, edges: &[(usize, usize, &Condition, usize)]) -> Vec<usize> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (e, edge) in edges.iter().enumerate() {
        out[edge.0].push(e);
    }
    // Iterative DFS (no recursion limit): 0 unseen, 1 on the stack, 2 finished.
    let (mut state, mut back, mut post) = (vec![0u8; n], vec![false; edges.len()], Vec::new());
    let mut stack = vec![(0usize, 0usize)];
    state[0] = 1;
    while let Some(top) = stack.last_mut() {
        let (u, next) = *top;
        top.1 += 1;
        match out[u].get(next).map(|&e| (e, state[edges[e].1])) {
            Some((e, 0)) => {
                state[edges[e].1] = 1;
                stack.push((edges[e].1, 0));
            }
            Some((e, 1)) => back[e] = true,
            Some(_) => {}
            None => {
                state[u] = 2;
                post.push(u);
                stack.pop();
            }
        }
    }
    // Reverse postorder is a topological order of the graph without its back edges.
    let mut layer = vec![0usize; n];
    for &u in post.iter().rev() {
        for &e in out[u].iter().filter(|&&e| !back[e]) {
            layer[edges[e].1] = layer[edges[e].1].max(layer[u] + 1);
        }
    }
    let last = post.iter().map(|&u| layer[u] + 1).max().unwrap_or(0);
    for (u, _) in state.iter().enumerate().filter(|(_, s)| **s == 0) {
        layer[u] = last;
    }
    layer
}

/// The vertices of each column, top to bottom. One barycenter sweep: a vertex sits near the mean
/// height of its predecessors, which removes most crossings at little cost; heights are centred
/// like the columns, and ties keep file order so the result is deterministic.
fn order(vlayer: &[usize], chains: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); vlayer.iter().max().map_or(1, |l| l + 1)];
    for (v, &l) in vlayer.iter().enumerate() {
        rows[l].push(v);
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); vlayer.len()];
    for pair in chains.iter().flat_map(|chain| chain.windows(2)) {
        preds[pair[1]].push(pair[0]);
    }
    let mut pos = vec![0.0f64; vlayer.len()];
    for row in &mut rows {
        let centre = (row.len() as f64 - 1.0) / 2.0;
        let mut keyed: Vec<(f64, usize, usize)> = (row.iter().enumerate())
            .map(|(i, &v)| {
                let sum: f64 = preds[v].iter().map(|&u| pos[u]).sum();
                let key = match preds[v].len() {
                    0 => i as f64 - centre,
                    len => sum / len as f64,
                };
                (key, i, v)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        *row = keyed.iter().map(|k| k.2).collect();
        for (i, &v) in row.iter().enumerate() {
            pos[v] = i as f64 - centre;
        }
    }
    rows
}

fn style(when: &Condition) -> (&'static str, &'static str, &'static str) {
    COLOURS[match when {
        Condition::Successful => 0,
        Condition::NotSuccessful => 1,
        Condition::Always => 2,
        Condition::Expr(_) => 3,
    }]
}

fn expression(when: &Condition) -> Option<&str> {
    match when {
        Condition::Expr(expr) => Some(expr.source()),
        _ => None,
    }
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if text.chars().count() > max => format!("{}…", &text[..at]),
        _ => text.to_owned(),
    }
}

/// Escapes text for XML content and attribute values alike.
pub(crate) fn esc(text: &str) -> String {
    let (mut out, entities) = (String::new(), ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]);
    for c in text.chars() {
        // The five characters are one byte each, so the byte index is the entity's index.
        match "&<>\"'".find(c).and_then(|i| entities.get(i)) {
            Some(entity) => out.push_str(entity),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tokenflow_core::flow::{ParseOptions, Step, parse_flow};

    use super::*;
    use crate::ui::run_path::NodeMark;

    const LOOPS: &str = r#"id: loops
variables: { s: {}, t: {} }
actions:
  fetch:
    type: http_connector
    input: { url: "https://example.com" }
    output: { status_code: s }
  parse: { type: extract_json }
  failed: { type: stop }
steps:
  - { from: start, to: fetch }
  - { from: fetch, to: fetch, when: "s < 3 && t == 'x'" }
  - { from: fetch, to: parse, when: successful }
  - { from: fetch, to: parse, when: "t == 'y'" }
  - { from: fetch, to: failed, when: not_successful }
  - { from: parse, to: fetch, when: not_successful }
  - { from: parse, to: stop }
"#;

    fn flow(yaml: &str) -> Flow {
        let parsed = parse_flow("f.yaml", yaml, &ParseOptions::default());
        parsed.unwrap().flow
    }

    /// Each `<g class="{class}…">…` of the SVG, up to its first `</g>`.
    fn groups<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let open = format!("<g class=\"{class}");
        let end = |at: usize| at + svg[at..].find("</g>").unwrap();
        let starts = svg.match_indices(&open);
        starts.map(|(at, _)| &svg[at..end(at)]).collect()
    }

    fn attr<'a>(element: &'a str, name: &str) -> &'a str {
        let start = element.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        &element[start..start + element[start..].find('"').unwrap()]
    }

    fn ids(svg: &str) -> Vec<&str> {
        let nodes = groups(svg, "node\"");
        nodes.iter().map(|g| attr(g, "data-node")).collect()
    }

    #[test]
    fn every_action_and_both_implicit_ends_become_one_node_each() {
        let svg = render_svg(&flow(LOOPS));
        assert_eq!(ids(&svg), ["start", "fetch", "parse", "failed", "stop"]);
        let nodes = groups(&svg, "node\"");
        assert!(nodes[1].contains("<rect") && nodes[1].contains(">http_connector</text>"));
        assert!(nodes[0].contains("<circle") && nodes[0].contains("stroke-width=\"1\""));
        for end in [nodes[3], nodes[4]] {
            assert!(end.contains("<circle") && end.contains("stroke-width=\"4\""));
        }
    }

    #[test]
    fn the_implicit_stop_is_left_out_when_no_step_leads_to_it() {
        let svg = render_svg(&flow(
            "id: f\nactions:\n  a: { type: extract_json }\n  done: { type: stop }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: done }\n",
        ));
        assert_eq!(ids(&svg), ["start", "a", "done"]);
    }

    #[test]
    fn every_step_becomes_one_edge_with_its_condition_class_and_colour() {
        let svg = render_svg(&flow(LOOPS));
        let expected = [
            ("start", "fetch", "always", "#1565c0"),
            ("fetch", "fetch", "expression", "#555"),
            ("fetch", "parse", "successful", "#2e7d32"),
            ("fetch", "parse", "expression", "#555"),
            ("fetch", "failed", "not-successful", "#c62828"),
            ("parse", "fetch", "not-successful", "#c62828"),
            ("parse", "stop", "always", "#1565c0"),
        ];
        let edges = groups(&svg, "edge ");
        assert_eq!(edges.len(), expected.len());
        for (edge, (from, to, class, colour)) in edges.iter().zip(expected) {
            assert_eq!(attr(edge, "class"), format!("edge edge-{class}"));
            assert_eq!((attr(edge, "data-from"), attr(edge, "data-to")), (from, to));
            assert_eq!(attr(edge, "stroke"), colour);
            assert!(edge.contains(&format!("marker-end=\"url(#tf-arrow-{class})\"")));
            assert!(svg.contains(&format!("<marker id=\"tf-arrow-{class}\"")));
        }
    }

    #[test]
    fn expression_conditions_are_labelled_on_their_edge_and_escaped() {
        let svg = render_svg(&flow(LOOPS));
        let label = ">s &lt; 3 &amp;&amp; t == &apos;x&apos;</text>";
        assert!(groups(&svg, "edge edge-expression")[0].contains(label));
        assert!(svg.contains(">t == &apos;y&apos;</text>"));
        assert!(!svg.contains("s < 3") && !svg.contains("&& t"));
    }

    #[test]
    fn a_self_loop_and_a_back_edge_are_drawn_as_edges_of_their_own() {
        let svg = render_svg(&flow(LOOPS));
        let edges = groups(&svg, "edge ");
        let (self_loop, back) = (attr(edges[1], "d"), attr(edges[5], "d"));
        assert!(self_loop.starts_with('M') && self_loop.contains(" C"));
        // The back edge climbs to a lane above every node before coming down to `fetch`.
        let lane_y = back.split(" V").nth(1).unwrap().split(' ').next().unwrap();
        let top = attr(groups(&svg, "node\"")[1], "y");
        assert!(lane_y.parse::<f64>().unwrap() < top.parse().unwrap());
    }

    #[test]
    fn parallel_edges_between_the_same_nodes_do_not_overlap() {
        let svg = render_svg(&flow(LOOPS));
        let edges = groups(&svg, "edge ");
        let targets = [attr(edges[2], "data-to"), attr(edges[3], "data-to")];
        assert_eq!(targets, ["parse"; 2]);
        assert_ne!(attr(edges[2], "d"), attr(edges[3], "d"));
    }

    #[test]
    fn long_edges_pass_a_waypoint_in_each_column_they_cross() {
        let svg = render_svg(&flow(
            "id: f\nactions:\n  a: { type: extract_json }\n  b: { type: extract_json }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: b }\n  - { from: a, to: stop, when: not_successful }\n  - { from: b, to: stop }\n",
        ));
        let long = groups(&svg, "edge edge-not-successful")[0];
        assert_eq!(attr(long, "d").matches(" L").count(), 1, "beside `b`");
    }

    #[test]
    fn the_output_is_one_balanced_self_contained_svg_element() {
        let svg = render_svg(&flow(LOOPS));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>") && svg.matches("<svg").count() == 1);
        let opened = svg.matches("<g ").count() + svg.matches("<g>").count();
        assert_eq!(opened, svg.matches("</g>").count());
        for external in ["<script", "href", "@import", "url(http"] {
            assert!(!svg.contains(external), "{external}");
        }
        let (w, h) = (attr(&svg, "width"), attr(&svg, "height"));
        assert!(svg.contains(&format!("viewBox=\"0 0 {w} {h}\"")));
        assert!(svg.contains("<g class=\"legend\""));
    }

    #[test]
    fn a_run_colours_its_nodes_numbers_its_steps_and_greys_the_rest() {
        let mut marks = RunMarks::default();
        let mark = |state, href: &str| NodeMark {
            state,
            title: "x < y".into(),
            href: Some(href.into()),
        };
        marks
            .nodes
            .insert("fetch".into(), mark(NodeState::NotSuccessful, "#action-9"));
        marks
            .nodes
            .insert("failed".into(), mark(NodeState::Reached, "#a&b"));
        marks.steps.insert(0, vec![1]);
        marks.steps.insert(1, (2..=9).collect());
        marks.steps.insert(4, vec![10]);
        let svg = render_run_svg(&flow(LOOPS), &marks);
        let nodes = groups(&svg, "node\"");
        let states: Vec<_> = nodes.iter().map(|g| attr(g, "data-state")).collect();
        let expected = [
            "not-reached",
            "not-successful",
            "not-reached",
            "reached",
            "not-reached",
        ];
        assert_eq!(states, expected);
        assert!(nodes[1].contains("<a href=\"#action-9\">") && nodes[1].contains("#c62828"));
        assert!(nodes[3].contains("<a href=\"#a&amp;b\">") && nodes[3].contains(": x &lt; y"));
        assert!(!nodes[0].contains("<a ") && nodes[2].contains(&format!("stroke=\"{GREY}\"")));
        let edges = groups(&svg, "edge ");
        let passes: Vec<_> = edges.iter().map(|g| g.contains("data-passes")).collect();
        assert_eq!(passes, [true, true, false, false, true, false, false]);
        assert_eq!(attr(edges[1], "data-passes"), "2 3 4 5 6 7 8 9");
        assert!(
            edges[1].contains(">2, 3, 4 … 7, 8, 9</text>"),
            "{}",
            edges[1]
        );
        assert!(edges[4].contains("stroke=\"#c62828\" stroke-width=\"3\""));
        assert!(edges[2].contains(&format!("stroke=\"{GREY}\"")));
        assert!(edges[2].contains("url(#tf-arrow-not-taken)"));
        // The flow page's drawing carries none of it.
        let plain = render_svg(&flow(LOOPS));
        assert!(!plain.contains("data-state") && !plain.contains("data-passes"));
        assert!(!plain.contains("<a ") && !plain.contains("not-taken"));
    }

    #[test]
    fn rendering_the_same_flow_twice_gives_the_same_string() {
        assert_eq!(render_svg(&flow(LOOPS)), render_svg(&flow(LOOPS)));
    }

    #[test]
    fn an_unvalidated_flow_with_unknown_and_unreachable_nodes_still_renders() {
        let mut flow = flow(LOOPS);
        let mut orphan = flow.actions["parse"].clone();
        orphan.id = "orphan<&>".into();
        flow.actions.insert(orphan.id.clone(), orphan);
        let orphan = "orphan<&>";
        for (from, to) in [(orphan, "fetch"), ("ghost", "stop"), (orphan, orphan)] {
            let (from, to, when) = (from.into(), to.into(), Condition::Always);
            flow.steps.push(Step { from, to, when });
        }
        let svg = render_svg(&flow);
        assert!(svg.contains("data-node=\"orphan&lt;&amp;&gt;\""));
        assert_eq!(groups(&svg, "edge ").len(), 9, "all but `ghost`'s");
    }
}
