//! The flow diagram: renders a validated [`Flow`] as one self-contained SVG (no fonts, CSS or
//! scripts from elsewhere), in the spirit of the Thinkwise process-flow modeler.
//!
//! This module owns layout and drawing only; the graph rules live in `tokenflow-core`.
//!
//! Key design decision: a small layered (Sugiyama-style) layout written here instead of a layout
//! dependency. Columns are the longest path from `start` over the graph without its DFS back
//! edges, so every remaining edge points right; edges spanning several columns get invisible
//! waypoints so they pass between nodes, never through them; one barycenter sweep orders each
//! column; back edges (loops) leave through a lane of their own above the drawing, so they are
//! never hidden behind nodes. Everything iterates in file order, so the same flow gives the same
//! string (the page can cache and tests can compare it).

use std::collections::BTreeMap;

use tokenflow_core::flow::{Condition, Flow, START, STOP};

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
const COLOURS: [(&str, &str, &str); 4] = [
    ("successful", "#2e7d32", "successful"),
    ("not-successful", "#c62828", "not successful"),
    ("always", "#1565c0", "always"),
    ("expression", "#555", "condition"),
];

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Start,
    End,
    Box,
}

struct Node<'a> {
    id: &'a str,
    kind: &'a str,
    shape: Shape,
}

struct Edge<'a> {
    from: usize,
    to: usize,
    when: &'a Condition,
}

/// The flow as an SVG document; never fails, even for a flow that did not pass validation.
pub fn render_svg(flow: &Flow) -> String {
    let mut nodes = vec![Node {
        id: START,
        kind: START,
        shape: Shape::Start,
    }];
    for (id, action) in &flow.actions {
        let shape = if action.spec.kind == STOP {
            Shape::End
        } else {
            Shape::Box
        };
        nodes.push(Node {
            id,
            kind: action.spec.kind,
            shape,
        });
    }
    if flow.steps.iter().any(|step| step.to == STOP) {
        nodes.push(Node {
            id: STOP,
            kind: STOP,
            shape: Shape::End,
        });
    }
    let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    // A step naming an unknown node cannot be drawn; validation reports it, we skip it.
    let edges: Vec<Edge> = (flow.steps.iter())
        .filter_map(|step| {
            let from = *index.get(step.from.as_str())?;
            let to = *index.get(step.to.as_str())?;
            Some(Edge {
                from,
                to,
                when: &step.when,
            })
        })
        .collect();
    let n = nodes.len();
    let layer = layers(n, &edges);

    // Vertices are the nodes followed by the waypoints of edges that span several columns.
    let mut vlayer = layer.clone();
    let chains: Vec<Vec<usize>> = (edges.iter())
        .map(|edge| {
            if layer[edge.to] <= layer[edge.from] {
                return Vec::new();
            }
            let mut chain = vec![edge.from];
            for l in layer[edge.from] + 1..layer[edge.to] {
                chain.push(vlayer.len());
                vlayer.push(l);
            }
            chain.push(edge.to);
            chain
        })
        .collect();
    let depth = vlayer.iter().max().map_or(1, |max| max + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (v, &l) in vlayer.iter().enumerate() {
        rows[l].push(v);
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); vlayer.len()];
    for pair in chains.iter().flat_map(|chain| chain.windows(2)) {
        preds[pair[1]].push(pair[0]);
    }
    // One barycenter sweep: a vertex sits near the mean height of its predecessors, which
    // removes most crossings; positions are centred because every column is centred.
    let mut pos = vec![0.0f64; vlayer.len()];
    for row in &mut rows {
        let centre = (row.len() as f64 - 1.0) / 2.0;
        let mut keyed: Vec<(f64, usize, usize)> = (row.iter().enumerate())
            .map(|(i, &v)| {
                let p = &preds[v];
                let key = if p.is_empty() {
                    i as f64 - centre
                } else {
                    p.iter().map(|&u| pos[u]).sum::<f64>() / p.len() as f64
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

    // Sizes follow the longest id and expression label, so text fits its box and its gap.
    let longest_id = nodes
        .iter()
        .map(|n| n.id.chars().count().min(ID_CHARS))
        .max();
    let col_w = (longest_id.unwrap_or(0) as f64 * 7.8 + 28.0).clamp(120.0, 300.0);
    let longest_label = (edges.iter())
        .filter_map(|e| expression(e.when).map(|s| s.chars().count().min(LABEL_CHARS)))
        .max();
    let gap = (longest_label.unwrap_or(0) as f64 * 6.0 + 48.0).clamp(96.0, 280.0);
    // Back edges (not self-loops) are the ones without a left-to-right chain.
    let back: Vec<bool> = (edges.iter().zip(&chains))
        .map(|(e, chain)| e.from != e.to && chain.is_empty())
        .collect();
    let lanes = back.iter().filter(|&&b| b).count() as f64;
    let nodes_top = MARGIN + lanes * LANE + 48.0;
    let tallest = rows.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let col_x = |l: usize| MARGIN + l as f64 * (col_w + gap);
    let mut y = vec![0.0f64; vlayer.len()];
    for row in &rows {
        let offset = (tallest - row.len() as f64) * SLOT_H / 2.0;
        for (i, &v) in row.iter().enumerate() {
            y[v] = nodes_top + offset + i as f64 * SLOT_H + NODE_H / 2.0;
        }
    }
    let half = |v: usize| match nodes.get(v).map(|node| node.shape) {
        Some(Shape::Box) | None => col_w / 2.0,
        Some(_) => R,
    };
    let cx = |v: usize| col_x(vlayer[v]) + col_w / 2.0;
    let out_port = |v: usize| (cx(v) + half(v), y[v]);
    let in_port = |v: usize| (cx(v) - half(v), y[v]);

    let mut edge_svg = String::new();
    let mut count: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for edge in &edges {
        *count.entry((edge.from, edge.to)).or_default() += 1;
    }
    let mut nth: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut lane = 0.0f64;
    for (e, edge) in edges.iter().enumerate() {
        let key = (edge.from, edge.to);
        let k = nth.entry(key).or_default();
        let (parallel, total) = (*k as f64, count.get(&key).copied().unwrap_or(1) as f64);
        *k += 1;
        let (d, label_at) = if edge.from == edge.to {
            // A self-loop arcs over the node's top; parallel ones arc higher.
            let boxed = nodes[edge.from].shape == Shape::Box;
            let top = y[edge.from] - if boxed { NODE_H / 2.0 } else { R };
            let (x, w, h) = (cx(edge.from), half(edge.from) / 2.0, 36.0 + 10.0 * parallel);
            let d = format!(
                "M{} {} C{} {} {} {} {} {}",
                f(x + w),
                f(top),
                f(x + w + 8.0),
                f(top - h),
                f(x - w - 8.0),
                f(top - h),
                f(x - w),
                f(top)
            );
            (d, (x, top - 0.75 * h - 4.0))
        } else if back[e] {
            // Up through the gap after the source, along its own lane, down before the target.
            let jitter = (lane % 4.0) * 5.0;
            let lane_y = MARGIN + 8.0 + lane * LANE;
            lane += 1.0;
            let (from, to) = (out_port(edge.from), in_port(edge.to));
            let x_out = col_x(layer[edge.from]) + col_w + gap / 2.0 + jitter;
            let x_in = col_x(layer[edge.to]) - gap / 2.0 - jitter;
            let points = [
                from,
                (x_out, from.1),
                (x_out, lane_y),
                (x_in, lane_y),
                (x_in, to.1),
                to,
            ];
            (rounded(&points, 10.0), ((x_out + x_in) / 2.0, lane_y - 4.0))
        } else {
            // Forward: horizontal-tangent curves between columns, straight across waypoints;
            // parallel edges get their ends spread apart so they never coincide.
            let dy = (parallel - (total - 1.0) / 2.0) * 8.0;
            let chain = &chains[e];
            let (mut px, mut py) = out_port(edge.from);
            py += dy;
            let mut d = format!("M{} {}", f(px), f(py));
            let mut label_at = (px, py);
            for (i, &v) in chain.iter().enumerate().skip(1) {
                let (qx, mut qy) = if v < n {
                    in_port(v)
                } else {
                    (col_x(vlayer[v]), y[v])
                };
                if v == edge.to {
                    qy += dy;
                }
                let mx = (px + qx) / 2.0;
                d += &format!(
                    " C{} {} {} {} {} {}",
                    f(mx),
                    f(py),
                    f(mx),
                    f(qy),
                    f(qx),
                    f(qy)
                );
                if i == 1 {
                    label_at = (mx, (py + qy) / 2.0 - 4.0);
                }
                (px, py) = (qx + col_w, qy);
                if v >= n {
                    d += &format!(" L{} {}", f(px), f(py));
                }
            }
            (d, label_at)
        };
        let (class, colour, _) = style(edge.when);
        let (from, to) = (esc(nodes[edge.from].id), esc(nodes[edge.to].id));
        edge_svg += &format!(
            "<g class=\"edge edge-{class}\" data-from=\"{from}\" data-to=\"{to}\" data-step=\"{e}\">\
             <title>{from} \u{2192} {to}: {}</title><path d=\"{d}\" fill=\"none\" stroke=\"{colour}\" \
             stroke-width=\"1.5\" marker-end=\"url(#tf-arrow-{class})\"/>",
            esc(edge.when.label())
        );
        if let Some(source) = expression(edge.when) {
            edge_svg += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" fill=\"{colour}\" \
                 stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
                f(label_at.0),
                f(label_at.1),
                esc(&cut(source, LABEL_CHARS))
            );
        }
        edge_svg += "</g>";
    }

    let mut node_svg = String::new();
    for (v, node) in nodes.iter().enumerate() {
        let (x, cy, id) = (cx(v), y[v], esc(node.id));
        let shown = esc(&cut(node.id, ID_CHARS));
        node_svg += &format!(
            "<g class=\"node\" data-node=\"{id}\" data-kind=\"{}\"><title>{id} ({})</title>",
            esc(node.kind),
            esc(node.kind)
        );
        node_svg += &match node.shape {
            Shape::Box => format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{NODE_H}\" rx=\"8\" fill=\"#fff\" \
                 stroke=\"#37474f\" stroke-width=\"1.5\"/><text x=\"{}\" y=\"{}\" \
                 text-anchor=\"middle\" font-size=\"13\" font-weight=\"600\" fill=\"#212121\">{shown}\
                 </text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" \
                 fill=\"#607d8b\">{}</text>",
                f(x - col_w / 2.0),
                f(cy - NODE_H / 2.0),
                f(col_w),
                f(x),
                f(cy - 3.0),
                f(x),
                f(cy + 13.0),
                esc(node.kind)
            ),
            // Start is a thin circle, an end a bold one, as in the modeler; the id goes below.
            Shape::Start | Shape::End => format!(
                "<circle cx=\"{}\" cy=\"{}\" r=\"{R}\" fill=\"#fff\" stroke=\"#37474f\" \
                 stroke-width=\"{}\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" \
                 font-size=\"12\" fill=\"#212121\">{shown}</text>",
                f(x),
                f(cy),
                if node.shape == Shape::End { 4 } else { 1 },
                f(x),
                f(cy + R + 14.0)
            ),
        };
        node_svg += "</g>";
    }

    let nodes_bottom = nodes_top + tallest * SLOT_H;
    let width = (col_x(depth) - gap / 2.0 + 24.0 + MARGIN).max(4.0 * 130.0 + 2.0 * MARGIN);
    let height = nodes_bottom + 24.0 + MARGIN;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Process flow {id}\" \
         font-family=\"sans-serif\" data-flow=\"{id}\"><title>Process flow {id}</title><defs>",
        w = f(width),
        h = f(height),
        id = esc(&flow.id)
    );
    // One arrowhead per colour: `context-stroke` is not supported everywhere yet.
    for (class, colour, _) in COLOURS {
        svg += &format!(
            "<marker id=\"tf-arrow-{class}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
             markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0 0 L10 5 L0 10 z\" \
             fill=\"{colour}\"/></marker>"
        );
    }
    // Edges first, so node fills cover line ends and labels stay readable.
    svg += &format!("</defs><g class=\"edges\">{edge_svg}</g><g class=\"nodes\">{node_svg}</g>");
    svg += "<g class=\"legend\" font-size=\"11\" fill=\"#212121\">";
    for (i, (_, colour, text)) in COLOURS.iter().enumerate() {
        let (x, ly) = (MARGIN + i as f64 * 130.0, nodes_bottom + 8.0);
        svg += &format!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\">{text}</text>",
            f(x),
            f(ly),
            f(x + 24.0),
            f(ly),
            f(x + 30.0),
            f(ly + 4.0)
        );
    }
    svg + "</g></svg>"
}

/// Column of every node: longest path from `start` once DFS back edges are set aside (so loops
/// cannot make it infinite); nodes `start` cannot reach go in one column after the others.
fn layers(n: usize, edges: &[Edge]) -> Vec<usize> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (e, edge) in edges.iter().enumerate() {
        out[edge.from].push(e);
    }
    // Iterative DFS (no recursion depth limit): 0 unseen, 1 on the stack, 2 finished.
    let mut state = vec![0u8; n];
    let mut back = vec![false; edges.len()];
    let mut post = Vec::new();
    let mut stack = vec![(0usize, 0usize)];
    state[0] = 1;
    while let Some(top) = stack.last_mut() {
        let (u, next) = *top;
        if let Some(&e) = out[u].get(next) {
            top.1 += 1;
            let v = edges[e].to;
            match state[v] {
                0 => {
                    state[v] = 1;
                    stack.push((v, 0));
                }
                1 => back[e] = true,
                _ => {}
            }
        } else {
            state[u] = 2;
            post.push(u);
            stack.pop();
        }
    }
    // Reverse postorder is a topological order of the graph without its back edges.
    let mut layer = vec![0usize; n];
    for &u in post.iter().rev() {
        for &e in out[u].iter().filter(|&&e| !back[e]) {
            layer[edges[e].to] = layer[edges[e].to].max(layer[u] + 1);
        }
    }
    let last = post.iter().map(|&u| layer[u] + 1).max().unwrap_or(0);
    for (u, seen) in state.iter().enumerate() {
        if *seen == 0 {
            layer[u] = last;
        }
    }
    layer
}

fn style(when: &Condition) -> (&'static str, &'static str, &'static str) {
    let i = match when {
        Condition::Successful => 0,
        Condition::NotSuccessful => 1,
        Condition::Always => 2,
        Condition::Expr(_) => 3,
    };
    COLOURS[i]
}

fn expression(when: &Condition) -> Option<&str> {
    match when {
        Condition::Expr(expr) => Some(expr.source()),
        _ => None,
    }
}

/// A polyline with rounded corners (quadratic curves of radius `r` at each bend).
fn rounded(points: &[(f64, f64)], r: f64) -> String {
    let toward = |a: (f64, f64), b: (f64, f64)| {
        let len = (b.0 - a.0).hypot(b.1 - a.1);
        let t = if len > 0.0 {
            r.min(len / 2.0) / len
        } else {
            0.0
        };
        (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
    };
    let Some(first) = points.first() else {
        return String::new();
    };
    let mut d = format!("M{} {}", f(first.0), f(first.1));
    for w in points.windows(3) {
        let (p, q) = (toward(w[1], w[0]), toward(w[1], w[2]));
        d += &format!(
            " L{} {} Q{} {} {} {}",
            f(p.0),
            f(p.1),
            f(w[1].0),
            f(w[1].1),
            f(q.0),
            f(q.1)
        );
    }
    if let Some(last) = points.last() {
        d += &format!(" L{} {}", f(last.0), f(last.1));
    }
    d
}

/// A coordinate with one decimal: short, and the same on every run.
fn f(v: f64) -> String {
    format!("{}", (v * 10.0).round() / 10.0)
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    text.chars()
        .take(max.saturating_sub(1))
        .chain(['\u{2026}'])
        .collect()
}

/// Escapes text for XML content and attribute values alike.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tokenflow_core::flow::{ParseOptions, Step, parse_flow};

    use super::*;

    fn flow(yaml: &str) -> Flow {
        parse_flow("diagram.yaml", yaml, &ParseOptions::default())
            .unwrap()
            .flow
    }

    /// The `<g …>` opening tags of one class, e.g. `"node\""` or `"edge "`.
    fn groups<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let open = format!("<g class=\"{class}");
        svg.match_indices(&open)
            .map(|(at, _)| &svg[at..at + svg[at..].find("</g>").unwrap()])
            .collect()
    }

    fn attr<'a>(element: &'a str, name: &str) -> &'a str {
        let start = element.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        &element[start..start + element[start..].find('"').unwrap()]
    }

    const LOOPS: &str = r#"id: loops
variables:
  s: {}
  t: {}
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

    #[test]
    fn every_action_and_both_implicit_ends_become_one_node_each() {
        let svg = render_svg(&flow(LOOPS));
        let nodes = groups(&svg, "node\"");
        let ids: Vec<&str> = nodes.iter().map(|n| attr(n, "data-node")).collect();
        assert_eq!(ids, ["start", "fetch", "parse", "failed", "stop"]);
        assert!(nodes[1].contains("<rect") && nodes[1].contains(">http_connector</text>"));
        assert!(
            nodes[0].contains("stroke-width=\"1\""),
            "start is a thin circle"
        );
        for end in [nodes[3], nodes[4]] {
            assert!(
                end.contains("<circle") && end.contains("stroke-width=\"4\""),
                "{end}"
            );
        }
    }

    #[test]
    fn the_implicit_stop_is_left_out_when_no_step_leads_to_it() {
        let svg = render_svg(&flow(
            "id: f\nactions:\n  a: { type: extract_json }\n  done: { type: stop }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: done }\n",
        ));
        let ids: Vec<&str> = groups(&svg, "node\"")
            .iter()
            .map(|n| attr(n, "data-node"))
            .collect();
        assert_eq!(ids, ["start", "a", "done"]);
    }

    #[test]
    fn every_step_becomes_one_edge_with_its_condition_class_and_colour() {
        let svg = render_svg(&flow(LOOPS));
        let edges: Vec<(&str, &str, &str, &str)> = (groups(&svg, "edge ").iter())
            .map(|e| {
                (
                    attr(e, "class"),
                    attr(e, "data-from"),
                    attr(e, "data-to"),
                    attr(e, "stroke"),
                )
            })
            .collect();
        assert_eq!(
            edges,
            [
                ("edge edge-always", "start", "fetch", "#1565c0"),
                ("edge edge-expression", "fetch", "fetch", "#555"),
                ("edge edge-successful", "fetch", "parse", "#2e7d32"),
                ("edge edge-expression", "fetch", "parse", "#555"),
                ("edge edge-not-successful", "fetch", "failed", "#c62828"),
                ("edge edge-not-successful", "parse", "fetch", "#c62828"),
                ("edge edge-always", "parse", "stop", "#1565c0"),
            ]
        );
        assert!(svg.contains("marker-end=\"url(#tf-arrow-successful)\""));
        assert!(svg.contains("<marker id=\"tf-arrow-successful\""));
    }

    #[test]
    fn expression_conditions_are_labelled_near_their_edge_and_escaped() {
        let svg = render_svg(&flow(LOOPS));
        let label = "s &lt; 3 &amp;&amp; t == &apos;x&apos;";
        let edge = groups(&svg, "edge edge-expression")[0];
        assert!(edge.contains(&format!(">{label}</text>")), "{edge}");
        assert!(!svg.contains("s < 3") && !svg.contains("&& t"));
        assert!(svg.contains(">t == &apos;y&apos;</text>"));
    }

    #[test]
    fn a_self_loop_and_a_back_edge_are_drawn_as_curves_of_their_own() {
        let svg = render_svg(&flow(LOOPS));
        let edges = groups(&svg, "edge ");
        let self_loop = attr(edges[1], "d");
        assert!(
            self_loop.starts_with('M') && self_loop.contains(" C"),
            "{self_loop}"
        );
        let back = attr(edges[5], "d");
        // The back edge climbs to a lane above every node before coming down to `fetch`.
        let lane_y: f64 = back
            .split(['M', 'L', 'Q', ' '])
            .filter_map(|t| t.parse().ok())
            .skip(1)
            .step_by(2)
            .fold(f64::MAX, f64::min);
        let node_top: f64 = attr(groups(&svg, "node\"")[1], "y").parse().unwrap();
        assert!(lane_y < node_top, "{back}");
    }

    #[test]
    fn parallel_edges_between_the_same_nodes_do_not_overlap() {
        let svg = render_svg(&flow(LOOPS));
        let edges = groups(&svg, "edge ");
        assert_eq!(
            (attr(edges[2], "data-to"), attr(edges[3], "data-to")),
            ("parse", "parse")
        );
        assert_ne!(attr(edges[2], "d"), attr(edges[3], "d"));
    }

    #[test]
    fn the_output_is_one_balanced_self_contained_svg_element() {
        let svg = render_svg(&flow(LOOPS));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        let opened = svg.matches("<g ").count() + svg.matches("<g>").count();
        assert_eq!(opened, svg.matches("</g>").count());
        assert_eq!(svg.matches("<svg").count(), 1);
        for external in ["<script", "href", "@import", "url(http"] {
            assert!(!svg.contains(external), "{external}");
        }
        let (w, h) = (attr(&svg, "width"), attr(&svg, "height"));
        assert!(svg.contains(&format!("viewBox=\"0 0 {w} {h}\"")));
        assert!(svg.contains("class=\"legend\""));
    }

    #[test]
    fn rendering_the_same_flow_twice_gives_the_same_string() {
        assert_eq!(render_svg(&flow(LOOPS)), render_svg(&flow(LOOPS)));
    }

    #[test]
    fn long_edges_pass_through_waypoints_between_the_columns() {
        let svg = render_svg(&flow(
            "id: f\nactions:\n  a: { type: extract_json }\n  b: { type: extract_json }\n  c: { type: extract_json }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: b }\n  - { from: b, to: c }\n  - { from: a, to: c, when: not_successful }\n  - { from: c, to: stop }\n",
        ));
        let long = groups(&svg, "edge edge-not-successful")[0];
        assert_eq!(
            attr(long, "d").matches(" L").count(),
            1,
            "one waypoint, beside `b`"
        );
    }

    #[test]
    fn an_unvalidated_flow_with_unknown_and_unreachable_nodes_does_not_panic() {
        let mut broken = flow(LOOPS);
        let mut orphan = broken.actions["parse"].clone();
        orphan.id = "orphan<&>".into();
        broken.actions.insert(orphan.id.clone(), orphan);
        for (from, to) in [
            ("orphan<&>", "fetch"),
            ("ghost", "stop"),
            ("orphan<&>", "orphan<&>"),
        ] {
            broken.steps.push(Step {
                from: from.into(),
                to: to.into(),
                when: Condition::Always,
            });
        }
        let svg = render_svg(&broken);
        assert!(svg.contains("data-node=\"orphan&lt;&amp;&gt;\""));
        assert_eq!(
            groups(&svg, "edge ").len(),
            9,
            "the step from `ghost` is skipped"
        );
    }
}
