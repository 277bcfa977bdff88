use super::*;

fn frame<'a>(format: &'a dyn Fn(f64) -> String) -> Frame<'a> {
    Frame {
        id: "lead",
        title: "Lead time <median>",
        desc: "Weekly median & more",
        format,
        min_top: 0.0,
    }
}

#[test]
fn a_line_chart_describes_itself_and_draws_each_series() {
    let fmt = |v: f64| format!("{v:.0} h");
    let svg = line_chart(
        &frame(&fmt),
        &["W1".into(), "W2".into(), "W3".into()],
        &[
            Series {
                name: "lead".into(),
                values: vec![Some(2.0), None, Some(7.0)],
            },
            Series {
                name: "wait".into(),
                values: vec![Some(1.0), Some(1.0), Some(1.0)],
            },
        ],
    );
    assert!(svg.starts_with("<svg"));
    assert!(svg.ends_with("</svg>"));
    assert!(
        svg.contains("role=\"img\" aria-labelledby=\"lead-title\" aria-describedby=\"lead-desc\"")
    );
    assert!(svg.contains("<title id=\"lead-title\">Lead time &lt;median&gt;</title>"));
    assert!(svg.contains("<desc id=\"lead-desc\">Weekly median &amp; more</desc>"));
    assert_eq!(svg.matches("<polyline").count(), 2);
    // A week without a value has no point: 2 + 3 circles.
    assert_eq!(svg.matches("<circle").count(), 5);
    // The axis goes to a round 8 h above the largest value.
    assert!(svg.contains(">8 h</text>"));
    assert!(svg.contains(">W2</text>"));
}

#[test]
fn a_bar_chart_writes_each_value_and_marker() {
    let fmt = |v: f64| format!("{v:.1} h");
    let svg = bar_chart(
        &frame(&fmt),
        &[
            Bar {
                label: "In review".into(),
                value: 2.0,
                marker: Some(4.0),
                colour: 0,
            },
            Bar {
                label: "Executing".into(),
                value: 0.5,
                marker: None,
                colour: 1,
            },
        ],
        &[(0, "wait"), (1, "touch")],
        Some("90th percentile"),
    );
    assert!(svg.contains(">In review</text>"));
    assert!(svg.contains(">2.0 h</text>"));
    assert!(svg.contains(">0.5 h</text>"));
    // One tick on a bar, one in the key.
    assert_eq!(svg.matches("<line").count(), 2);
    assert!(svg.contains(">90th percentile</text>"));
    assert!(svg.contains(">touch</text>"));
}

#[test]
fn axes_end_on_round_numbers() {
    assert_eq!(nice_axis(7.0), (8.0, 2.0));
    assert_eq!(nice_axis(0.0), (1.0, 0.25));
    assert_eq!(nice_axis(f64::NAN), (1.0, 0.25));
    assert_eq!(nice_axis(100.0), (100.0, 25.0));
    let (top, step) = nice_axis(0.37);
    assert!(top >= 0.37 && step > 0.0);
}

#[test]
fn text_is_escaped() {
    assert_eq!(
        escape("a<b & \"c\" 'd'>"),
        "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;"
    );
}

#[test]
fn tiny_values_keep_a_readable_axis() {
    let fmt = |v: f64| format!("{v}");
    let mut f = frame(&fmt);
    f.min_top = 100.0;
    let svg = line_chart(
        &f,
        &["W1".into()],
        &[Series {
            name: "s".into(),
            values: vec![Some(0.001)],
        }],
    );
    assert!(
        svg.contains(">100</text>") && svg.contains(">25</text>"),
        "{svg}"
    );
    // A series with no value at all draws no line.
    let empty = line_chart(
        &f,
        &["W1".into()],
        &[Series {
            name: "s".into(),
            values: vec![None],
        }],
    );
    assert!(!empty.contains("<polyline"));
}
