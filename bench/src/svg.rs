//! Line charts as standalone SVG for the report: panels stacked under each other on one shared
//! time axis, each with its own y scale, a title per panel and a `<desc>` that says in words what
//! it shows (the report's table holds the same figures as text).

use std::fmt::Write as _;

/// One line of a panel: its name, its colour and its points `(x, y)`.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title (with the unit) and its lines.
pub struct Panel<'a> {
    pub title: &'a str,
    pub series: Vec<Series<'a>>,
}

const WIDTH: f64 = 760.0;
const PANEL_HEIGHT: f64 = 120.0;
const GAP: f64 = 42.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;

/// `panels` over the x range `0..=x_max` labelled `x_label`; `description` becomes the `<desc>`.
pub fn chart(
    title: &str,
    description: &str,
    x_label: &str,
    x_max: f64,
    panels: &[Panel],
) -> String {
    let height = GAP + panels.len() as f64 * (PANEL_HEIGHT + GAP) + 10.0;
    let plot_width = WIDTH - LEFT - RIGHT;
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-labelledby="t d" font-family="sans-serif" font-size="11">
<title id="t">{}</title>
<desc id="d">{}</desc>
<rect width="100%" height="100%" fill="white"/>
"#,
        escape(title),
        escape(description)
    );
    for (index, panel) in panels.iter().enumerate() {
        let top = GAP + index as f64 * (PANEL_HEIGHT + GAP);
        let bottom = top + PANEL_HEIGHT;
        let y_max = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|&(_, y)| y))
            .filter(|y| y.is_finite())
            .fold(0.0_f64, f64::max);
        let y_max = nice_ceiling(y_max);
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"##,
            top - 8.0,
            escape(panel.title)
        );
        // Legend, right-aligned on the title line.
        let mut legend_x = WIDTH - RIGHT;
        for series in panel.series.iter().rev() {
            legend_x -= 8.0 + 7.0 * series.name.len() as f64;
            let _ = writeln!(
                out,
                r##"<rect x="{legend_x}" y="{}" width="10" height="3" fill="{}"/><text x="{}" y="{}">{}</text>"##,
                top - 12.0,
                series.colour,
                legend_x + 13.0,
                top - 8.0,
                escape(series.name)
            );
            legend_x -= 14.0;
        }
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PANEL_HEIGHT}" fill="none" stroke="#bbb"/>"##
        );
        for (fraction, label) in [(0.0, 0.0), (0.5, y_max / 2.0), (1.0, y_max)] {
            let y = bottom - fraction * PANEL_HEIGHT;
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                number(label)
            );
        }
        for series in &panel.series {
            let mut path = String::new();
            for &(x, y) in series.points.iter().filter(|(_, y)| y.is_finite()) {
                let px = LEFT + (x / x_max) * plot_width;
                let py = bottom - (y / y_max) * PANEL_HEIGHT;
                let _ = write!(path, "{px:.1},{py:.1} ");
            }
            let _ = writeln!(
                out,
                r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"##,
                path.trim_end(),
                series.colour
            );
        }
        for fraction in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let x = LEFT + fraction * plot_width;
            let _ = writeln!(
                out,
                r##"<text x="{x}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
                bottom + 13.0,
                number(fraction * x_max)
            );
        }
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
        LEFT + plot_width / 2.0,
        height - 4.0,
        escape(x_label)
    );
    out.push_str("</svg>\n");
    out
}

/// The smallest of 1, 2, 2.5 or 5 × 10^k that is at least `value` (and at least 1).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= value {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn number(value: f64) -> String {
    if value >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up_to_readable_steps() {
        assert_eq!(nice_ceiling(0.3), 1.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(21.0), 25.0);
        assert_eq!(nice_ceiling(260.0), 500.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }

    #[test]
    fn a_chart_holds_each_series_as_a_line_within_its_panel_and_escapes_text() {
        let svg = chart(
            "RSS <MiB>",
            "flat & fine",
            "seconds",
            100.0,
            &[Panel {
                title: "RSS",
                series: vec![Series {
                    name: "rss",
                    colour: "#1f77b4",
                    points: vec![(0.0, 10.0), (50.0, 20.0), (100.0, f64::NAN)],
                }],
            }],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<title id=\"t\">RSS &lt;MiB&gt;</title>"));
        assert!(svg.contains("<desc id=\"d\">flat &amp; fine</desc>"));
        // y scale 0..20: the first point at half height, the second at the top; NaN left out.
        let top = GAP;
        let line = svg
            .lines()
            .find(|l| l.starts_with("<polyline"))
            .unwrap_or_default();
        assert!(
            line.contains(&format!(
                "points=\"{LEFT:.1},{:.1} {:.1},{top:.1}\"",
                top + PANEL_HEIGHT / 2.0,
                LEFT + (WIDTH - LEFT - RIGHT) / 2.0
            )),
            "{line}"
        );
    }
}
