//! Small SVG charts drawn on the server, so a page needs no chart library in the
//! browser and a screenshot shows the picture as it is.
//!
//! Hand-written rather than drawn by a plotting crate: what these charts need is a
//! line chart and a bar chart, and what matters most is that each carries a
//! `<title>` and `<desc>` for assistive technology, text that stays readable when
//! scaled, colours that survive colour blindness (the Okabe–Ito palette) with a dash
//! pattern per series besides, and no font file at run time. A plotting crate's SVG
//! backend gives none of the first and measures text with font files for the rest.

use std::fmt::Write;

/// Okabe–Ito colours, told apart with colour-blind vision too.
const PALETTE: [&str; 5] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"];
/// A dash pattern per series, so lines differ without colour (and in greyscale).
const DASHES: [&str; 5] = ["", "6 3", "2 3", "8 3 2 3", "1 2"];
const WIDTH: f64 = 640.0;
const FONT: &str = "font-family=\"system-ui, sans-serif\" font-size=\"13\"";

/// One line of a line chart: a value per x label, `None` where nothing was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// What every chart says about itself: an id for its `<title>` and `<desc>`, and
/// how its values read as text.
pub struct Frame<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub desc: &'a str,
    pub format: &'a dyn Fn(f64) -> String,
    /// The value axis reaches at least this far, so tiny values do not blow up
    /// into a full-height line whose axis labels all read the same.
    pub min_top: f64,
}

/// Escapes text for an SVG element or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round upper bound and step for an axis from 0 to at least `max`.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

fn open(out: &mut String, frame: &Frame<'_>, height: f64) {
    let id = escape(frame.id);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" \
         role=\"img\" aria-labelledby=\"{id}-title\" aria-describedby=\"{id}-desc\" {FONT}>\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(frame.title),
        escape(frame.desc),
    );
}

/// Horizontal grid lines and their labels on the left, from 0 to `top`.
fn y_grid(out: &mut String, frame: &Frame<'_>, plot: (f64, f64, f64, f64), top: f64, step: f64) {
    let (left, right, y0, y1) = plot;
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = y0 - (y0 - y1) * v / top;
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{right}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d4da\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#333\">{}</text>",
            left - 6.0,
            y + 4.0,
            escape(&(frame.format)(v)),
        );
        v += step;
    }
}

/// The legend: a short stroke in each series' colour and dash, and its name.
fn legend(out: &mut String, series: &[Series], y: f64) {
    let mut x = 70.0;
    for (i, s) in series.iter().enumerate() {
        let (colour, dash) = (PALETTE[i % PALETTE.len()], DASHES[i % DASHES.len()]);
        let _ = write!(
            out,
            "<line x1=\"{x}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"3\" \
             stroke-dasharray=\"{dash}\"/><text x=\"{}\" y=\"{}\" fill=\"#222\">{}</text>",
            x + 24.0,
            x + 30.0,
            y + 4.0,
            escape(&s.name),
        );
        x += 40.0 + 7.5 * s.name.chars().count() as f64;
    }
}

/// A line chart of series over the same x labels (weeks), from zero up.
pub fn line_chart(frame: &Frame<'_>, x_labels: &[String], series: &[Series]) -> String {
    let height = 280.0;
    let plot = (70.0, WIDTH - 20.0, 200.0, 20.0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(frame.min_top, |m, v| m.max(*v));
    let (top, step) = nice_axis(max);
    let mut out = String::new();
    open(&mut out, frame, height);
    y_grid(&mut out, frame, plot, top, step);
    let (left, right, y0, y1) = plot;
    let n = x_labels.len().max(1);
    let x_at = |i: usize| left + (right - left) * (i as f64 + 0.5) / n as f64;
    // Every label when they fit, else every other one.
    let every = if n > 8 { 2 } else { 1 };
    for (i, label) in x_labels.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
            x_at(i),
            y0 + 18.0,
            escape(label),
        );
    }
    for (i, s) in series.iter().enumerate() {
        let (colour, dash) = (PALETTE[i % PALETTE.len()], DASHES[i % DASHES.len()]);
        let points: Vec<(f64, f64)> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(j, v)| v.map(|v| (x_at(j), y0 - (y0 - y1) * v / top)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" \
             stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            path.join(" "),
        );
        for (x, y) in points {
            let _ = write!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{colour}\"/>"
            );
        }
    }
    legend(&mut out, series, height - 30.0);
    out.push_str("</svg>");
    out
}

/// One bar of a bar chart, with an optional marker further along (a p90 beside a
/// median) and its colour index.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub marker: Option<f64>,
    pub colour: usize,
}

/// Room for the bars' labels on the left: at least 150 units, more for a long
/// label (one that says its kind in words, besides its colour), at most half
/// the picture.
fn label_room(bars: &[Bar]) -> f64 {
    let longest = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    (14.0 + 7.0 * longest as f64).clamp(150.0, WIDTH / 2.0)
}

/// A horizontal bar chart: one labelled row per bar, the value written at its end,
/// a marker drawn as a tick. `key` names the colours, `marker` what a tick means;
/// the colour is never all that tells bars apart, so a label says it too.
pub fn bar_chart(
    frame: &Frame<'_>,
    bars: &[Bar],
    key: &[(usize, &str)],
    marker: Option<&str>,
) -> String {
    let row = 30.0;
    let height = 70.0 + row * bars.len() as f64;
    let (left, right) = (label_room(bars), WIDTH - 90.0);
    let max = bars
        .iter()
        .map(|b| b.value.max(b.marker.unwrap_or(0.0)))
        .fold(frame.min_top, f64::max);
    let (top, _) = nice_axis(max);
    let x_of = |v: f64| left + (right - left) * v / top;
    let mut out = String::new();
    open(&mut out, frame, height);
    for (i, bar) in bars.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let colour = PALETTE[bar.colour % PALETTE.len()];
        let end = x_of(bar.value);
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#222\">{}</text>\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"18\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#222\">{}</text>",
            left - 8.0,
            y + 14.0,
            escape(&bar.label),
            (end - left).max(1.0),
            end.max(bar.marker.map_or(end, x_of)) + 6.0,
            y + 14.0,
            escape(&(frame.format)(bar.value)),
        );
        if let Some(m) = bar.marker {
            let x = x_of(m);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#222\" stroke-width=\"2\"/>",
                y - 3.0,
                y + 21.0,
            );
        }
    }
    let mut x = left;
    let y = height - 25.0;
    for (colour, name) in key {
        let fill = PALETTE.get(*colour).copied().unwrap_or("#222");
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"14\" fill=\"{fill}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#222\">{}</text>",
            y - 10.0,
            x + 20.0,
            y + 2.0,
            escape(name),
        );
        x += 40.0 + 7.5 * name.chars().count() as f64;
    }
    if let Some(name) = marker {
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#222\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{}\" fill=\"#222\">{}</text>",
            y - 12.0,
            y + 6.0,
            x + 8.0,
            y + 2.0,
            escape(name),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod label_room_tests {
    use super::*;

    fn bar(label: &str) -> Bar {
        Bar {
            label: label.into(),
            value: 1.0,
            marker: None,
            colour: 0,
        }
    }

    #[test]
    fn a_long_label_widens_its_column_so_it_starts_inside_the_picture() {
        assert_eq!(label_room(&[bar("Approved")]), 150.0);
        let long = "Changes requested (wait)";
        let room = label_room(&[bar("Approved"), bar(long)]);
        // Written right-aligned 8 units left of the bars, at about 7 units a letter.
        assert!(room - 8.0 - 7.0 * long.len() as f64 >= 0.0, "{room}");
        assert!(label_room(&[bar(&"x".repeat(200))]) <= WIDTH / 2.0);
        let fmt = |v: f64| format!("{v:.1} h");
        let frame = Frame {
            id: "steps",
            title: "Time per step",
            desc: "",
            format: &fmt,
            min_top: 0.0,
        };
        let svg = bar_chart(&frame, &[bar(long)], &[(0, "wait")], None);
        assert!(svg.contains(&format!(">{long}</text>")), "{svg}");
        assert!(svg.contains(&format!("<rect x=\"{room}\"")), "{svg}");
    }
}
