//! The charts of RFC.md's "Against real engines": horizontal bars of speed-ups (a peer's
//! time over ours) on a logarithmic axis centred on 1x, one group per kernel or program, one
//! bar per peer, written as SVG by `clif-bounds bench --chart FILE`.

use std::fmt::Write;

/// Where the axis ends: speed-ups beyond are drawn at the edge, their value printed.
const LIMIT: f64 = 8.0;
const LABEL_WIDTH: f64 = 330.0;
const PLOT_WIDTH: f64 = 480.0;
const BAR: f64 = 11.0;
const GAP: f64 = 7.0;
const COLOURS: [&str; 3] = ["#1f77b4", "#ff7f0e", "#2ca02c"];

/// An SVG chart titled `title` of `groups` (a label, and per series its speed-up of ours
/// over that peer: peer time / our time; `None` where it was not measured), one bar per
/// series named in `series`.
pub fn speedups(title: &str, series: &[&str], groups: &[(String, Vec<Option<f64>>)]) -> String {
    let per_group = series.len() as f64 * BAR + GAP;
    let top = 48.0 + 16.0 * series.len() as f64;
    let height = top + groups.len() as f64 * per_group + 40.0;
    let width = LABEL_WIDTH + PLOT_WIDTH + 70.0;
    // x of a speed-up on the log axis, clamped to the plot.
    let x = |v: f64| {
        let t = v.clamp(1.0 / LIMIT, LIMIT).log2() / LIMIT.log2();
        LABEL_WIDTH + PLOT_WIDTH / 2.0 * (1.0 + t)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (i, name) in series.iter().enumerate() {
        let y = 34.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="10" y="{}" width="12" height="10" fill="{}"/><text x="28" y="{}">time of {} / time of ours (right of 1x: ours faster)</text>"#,
            y,
            COLOURS[i % COLOURS.len()],
            y + 9.0,
            escape(name)
        );
    }
    // Grid lines at powers of two.
    let mut tick = 1.0 / LIMIT;
    while tick <= LIMIT * 1.001 {
        let gx = x(tick);
        let colour = if (tick - 1.0).abs() < 1e-9 {
            "black"
        } else {
            "lightgray"
        };
        let _ = writeln!(
            s,
            r#"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{:.1}" stroke="{colour}"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}x</text>"#,
            height - 30.0,
            height - 16.0,
            format_tick(tick)
        );
        tick *= 2.0;
    }
    for (g, (label, values)) in groups.iter().enumerate() {
        let y0 = top + g as f64 * per_group;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_WIDTH - 8.0,
            y0 + per_group / 2.0,
            escape(label)
        );
        for (i, v) in values.iter().enumerate() {
            let y = y0 + i as f64 * BAR;
            let Some(v) = v.filter(|v| v.is_finite() && *v > 0.0) else {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" fill="gray">not measured</text>"#,
                    x(1.0) + 4.0,
                    y + BAR - 2.0
                );
                continue;
            };
            let (a, b) = (x(1.0).min(x(v)), x(1.0).max(x(v)));
            let _ = writeln!(
                s,
                r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="{}">{v:.2}x</text>"#,
                (b - a).max(0.5),
                BAR - 1.0,
                COLOURS[i % COLOURS.len()],
                if v >= 1.0 { b + 3.0 } else { a - 3.0 },
                y + BAR - 2.0,
                if v >= 1.0 { "start" } else { "end" }
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// The geometric mean of the finite, positive values; `None` when there are none.
pub fn geometric_mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values
        .into_iter()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

fn format_tick(t: f64) -> String {
    if t >= 1.0 {
        format!("{t}")
    } else {
        format!("1/{}", (1.0 / t).round())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_on_the_side_of_their_speedup() {
        let svg = speedups(
            "t",
            &["p"],
            &[
                ("fast".into(), vec![Some(2.0)]),
                ("slow".into(), vec![Some(0.5)]),
                ("none".into(), vec![None]),
            ],
        );
        // 1x is at the middle of the plot; 2x is a third of the half-width right of it
        // (log2(2) / log2(8)), 0.5x as far left.
        let one = LABEL_WIDTH + PLOT_WIDTH / 2.0;
        let third = PLOT_WIDTH / 2.0 / 3.0;
        assert!(svg.contains(&format!(r#"<rect x="{one:.1}""#)), "{svg}");
        assert!(
            svg.contains(&format!(r#"<rect x="{:.1}""#, one - third)),
            "{svg}"
        );
        assert!(svg.contains(">2.00x<") && svg.contains(">0.50x<"));
        assert!(svg.contains("not measured"));
    }

    #[test]
    fn the_geometric_mean_ignores_what_was_not_measured() {
        assert_eq!(geometric_mean([2.0, 8.0, f64::NAN]), Some(4.0));
        assert_eq!(geometric_mean([]), None);
    }
}
