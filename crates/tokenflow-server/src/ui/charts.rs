//! The dashboard's charts as self-contained SVG, drawn here (no library, no script, no font
//! from elsewhere): stacked bars over time, paired horizontal bars, and points on a time axis.
//!
//! Each chart is an `<svg role="img">` whose `<title>` names it and whose `<desc>` says what it
//! shows in words; the page puts the same figures in a table beside it (docs/operations.md,
//! "Dashboard"), so nothing depends on seeing the drawing. Colours come from classes of the
//! UI's stylesheet (`.series-…`), which the page's Content-Security-Policy allows, not from
//! inline styles, which it does not.

use super::diagram::esc;

const WIDTH: f64 = 720.0;
/// Room for the value axis on the left of a time chart.
const AXIS: f64 = 44.0;
/// Room for a row's label in a bar list.
const LABEL: f64 = 180.0;
const ROW: f64 = 22.0;

/// One coloured series of a chart: its legend text, CSS class and a value per category.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub class: String,
    pub values: Vec<f64>,
}

/// A coordinate rounded to one decimal.
fn num(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn open(id: &str, height: f64, title: &str, desc: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{id}\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"100%\" class=\"chart\"><title id=\"{id}-title\">{}</title>\
         <desc id=\"{id}-desc\">{}</desc>",
        esc(title),
        esc(desc),
        height = num(height)
    )
}

fn legend(series: &[Series], y: f64) -> String {
    let mut out = String::new();
    let mut x = AXIS;
    for s in series {
        out.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" class=\"series-{}\"/>\
             <text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
            num(y),
            esc(&s.class),
            num(x + 14.0),
            num(y + 9.0),
            esc(&s.name)
        ));
        x += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
    out
}

/// A nice upper bound for an axis that must reach `max`.
fn axis_top(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * magnitude)
}

/// Stacked vertical bars, one per category (an interval), with a value axis and a legend;
/// `labels` are the categories' names, and every `every`-th one is written under its bar.
pub fn stacked_bars(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
    every: usize,
) -> String {
    let height = 220.0;
    let (top, bottom) = (28.0, height - 24.0);
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| series.iter().filter_map(|s| s.values.get(i)).sum())
        .collect();
    let max = axis_top(totals.iter().copied().fold(0.0, f64::max));
    let scale = (bottom - top) / max;
    let step = (WIDTH - AXIS - 8.0) / labels.len().max(1) as f64;
    let mut out = open(id, height, title, desc);
    out.push_str(&legend(series, 4.0));
    for (value, y) in [(0.0, bottom), (max / 2.0, (top + bottom) / 2.0), (max, top)] {
        out.push_str(&format!(
            "<line x1=\"{AXIS}\" x2=\"{WIDTH}\" y1=\"{y}\" y2=\"{y}\" class=\"grid\"/>\
             <text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text>",
            num(AXIS - 4.0),
            num(y + 4.0),
            value,
            y = num(y)
        ));
    }
    for (i, label) in labels.iter().enumerate() {
        let x = AXIS + 4.0 + step * i as f64;
        let mut y = bottom;
        for s in series {
            let value = s.values.get(i).copied().unwrap_or(0.0);
            if value > 0.0 {
                let h = value * scale;
                y -= h;
                out.push_str(&format!(
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"series-{}\">\
                     <title>{}: {} {}</title></rect>",
                    num(x),
                    num(y),
                    num((step - 2.0).max(1.0)),
                    num(h),
                    esc(&s.class),
                    esc(label),
                    value,
                    esc(&s.name)
                ));
            }
        }
        if every > 0 && i % every == 0 {
            out.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" class=\"tick\">{}</text>",
                num(x),
                num(height - 8.0),
                esc(label)
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one row per category with one bar per series under each other, each
/// labelled with its value as `format` writes it.
pub fn bar_rows(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
    format: fn(f64) -> String,
) -> String {
    let bars = series.len().max(1) as f64;
    let height = 24.0 + labels.len() as f64 * (ROW * bars + 6.0);
    let max = axis_top(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max),
    );
    let room = WIDTH - LABEL - 80.0;
    let mut out = open(id, height, title, desc);
    out.push_str(&legend(series, 4.0));
    for (i, label) in labels.iter().enumerate() {
        let y = 24.0 + i as f64 * (ROW * bars + 6.0);
        out.push_str(&format!(
            "<text x=\"4\" y=\"{}\" class=\"label\">{}</text>",
            num(y + ROW * bars / 2.0 + 4.0),
            esc(&cut(label, 24))
        ));
        for (j, s) in series.iter().enumerate() {
            let value = s.values.get(i).copied().unwrap_or(0.0);
            let w = (value / max * room).max(if value > 0.0 { 1.0 } else { 0.0 });
            let by = y + j as f64 * ROW;
            out.push_str(&format!(
                "<rect x=\"{LABEL}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"series-{}\">\
                 <title>{}: {} {}</title></rect>\
                 <text x=\"{}\" y=\"{}\" class=\"value\">{}</text>",
                num(by + 2.0),
                num(w),
                num(ROW - 6.0),
                esc(&s.class),
                esc(label),
                esc(&s.name),
                esc(&format(value)),
                num(LABEL + w + 4.0),
                num(by + ROW - 8.0),
                esc(&format(value))
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// One point on a time axis from `start` to `end` (unix seconds).
#[derive(Debug, Clone)]
pub struct Point {
    pub label: String,
    pub class: String,
    pub at: i64,
    /// The point's time as the page writes it.
    pub when: String,
}

/// Points on a time axis, one row each; points before `start` sit on its left edge.
pub fn timeline(
    id: &str,
    title: &str,
    desc: &str,
    points: &[Point],
    (start, end): (i64, i64),
    axis: (&str, &str),
) -> String {
    let height = 44.0 + points.len() as f64 * ROW;
    let room = WIDTH - LABEL - 20.0;
    let span = (end - start).max(1) as f64;
    let mut out = open(id, height, title, desc);
    let base = height - 16.0;
    out.push_str(&format!(
        "<line x1=\"{LABEL}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" class=\"grid\"/>\
         <text x=\"{LABEL}\" y=\"{}\" class=\"tick\">{}</text>\
         <text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text>",
        num(LABEL + room),
        num(base - 12.0),
        num(base - 12.0),
        num(height - 2.0),
        esc(axis.0),
        num(LABEL + room),
        num(height - 2.0),
        esc(axis.1)
    ));
    for (i, point) in points.iter().enumerate() {
        let y = 12.0 + i as f64 * ROW;
        let x = LABEL + ((point.at - start) as f64 / span).clamp(0.0, 1.0) * room;
        out.push_str(&format!(
            "<text x=\"4\" y=\"{}\" class=\"label\">{}</text>\
             <line x1=\"{LABEL}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" class=\"grid\"/>\
             <circle cx=\"{}\" cy=\"{}\" r=\"5\" class=\"series-{}\"><title>{}: {}</title></circle>",
            num(y + 4.0),
            esc(&cut(&point.label, 24)),
            num(x),
            num(y),
            num(y),
            num(x),
            num(y),
            esc(&point.class),
            esc(&point.label),
            esc(&point.when)
        ));
    }
    out.push_str("</svg>");
    out
}

/// At most `n` characters, with an ellipsis when cut (the whole text is in the bar's title).
fn cut(text: &str, n: usize) -> String {
    if text.chars().count() > n {
        format!("{}…", text.chars().take(n - 1).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, values: &[f64]) -> Series {
        Series {
            name: name.into(),
            class: name.into(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn a_chart_has_its_title_and_description_and_escapes_text() {
        let svg = stacked_bars(
            "runs",
            "Runs <per> interval",
            "3 completed & 1 failed",
            &["12:00".into(), "12:01".into()],
            &[
                series("completed", &[2.0, 1.0]),
                series("failed", &[0.0, 1.0]),
            ],
            1,
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<title id=\"runs-title\">Runs &lt;per&gt; interval</title>"));
        assert!(svg.contains("<desc id=\"runs-desc\">3 completed &amp; 1 failed</desc>"));
        assert_eq!(
            svg.matches("class=\"series-completed\"").count(),
            3,
            "legend and 2 bars"
        );
        assert_eq!(
            svg.matches("class=\"series-failed\"").count(),
            2,
            "legend and 1 bar"
        );
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn axes_end_on_a_round_number() {
        assert_eq!(axis_top(0.0), 1.0);
        assert_eq!(axis_top(3.0), 5.0);
        assert_eq!(axis_top(10.0), 10.0);
        assert_eq!(axis_top(11.0), 20.0);
        assert_eq!(axis_top(730.0), 1000.0);
    }

    #[test]
    fn timeline_points_before_the_axis_start_sit_on_its_edge() {
        let point = |at| Point {
            label: "a".into(),
            class: "ok".into(),
            at,
            when: "then".into(),
        };
        let svg = timeline(
            "v",
            "t",
            "d",
            &[point(-50), point(100)],
            (0, 100),
            ("now", "later"),
        );
        assert!(svg.contains(&format!("cx=\"{LABEL}\"")), "{svg}");
        assert!(svg.contains(&format!("cx=\"{}\"", WIDTH - 20.0)), "{svg}");
    }
}
