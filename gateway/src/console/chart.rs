//! Charts as SVG written on the server: no script, no external asset, readable without
//! colour (every series is also named in the legend and each column has a tooltip title).
//! Colours are the Okabe-Ito palette, distinguishable with the common colour-vision
//! deficiencies.

use super::html::Html;

/// Okabe-Ito, without its black (kept for text).
const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
];
/// Series beyond the palette are summed into the last one, named by the caller.
pub(crate) const MAX_SERIES: usize = PALETTE.len();

const WIDTH: u32 = 720;
const HEIGHT: u32 = 220;
const LEFT: u32 = 48;
const BOTTOM: u32 = 24;
const TOP: u32 = 8;

/// One stacked series: its name and one value per column.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) values: Vec<u64>,
}

/// Stacked columns, one per label (`labels[i]` names column `i`; every series has one
/// value per label), with a y axis from 0 to a round maximum and a legend.
pub(crate) fn stacked_columns(title: &str, labels: &[String], series: &[Series]) -> Html {
    let columns = labels.len().max(1);
    let totals: Vec<u64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let top = round_up(totals.iter().copied().max().unwrap_or(0));
    let plot_w = WIDTH - LEFT - 8;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let step = f64::from(plot_w) / columns as f64;
    let bar = (step * 0.75).max(1.0);
    let y = |value: u64| f64::from(plot_h) * value as f64 / top as f64;

    let mut svg = Html::default();
    svg.raw("<figure class=\"chart\"><svg viewBox=\"0 0 ")
        .number(WIDTH)
        .raw(" ")
        .number(HEIGHT)
        .raw("\" role=\"img\" aria-label=\"")
        .text(title)
        .raw("\"><title>")
        .text(title)
        .raw("</title>");
    // The axis: 0, half and the top, with faint grid lines.
    for tick in [0, top / 2, top] {
        let at = f64::from(TOP + plot_h) - y(tick);
        svg.raw("<line class=\"grid\" x1=\"")
            .number(LEFT)
            .raw("\" x2=\"")
            .number(WIDTH - 8)
            .raw("\" y1=\"")
            .number(format_args!("{at:.1}"))
            .raw("\" y2=\"")
            .number(format_args!("{at:.1}"))
            .raw("\"/><text class=\"tick\" x=\"")
            .number(LEFT - 6)
            .raw("\" y=\"")
            .number(format_args!("{:.1}", at + 4.0))
            .raw("\" text-anchor=\"end\">")
            .number(tick)
            .raw("</text>");
    }
    for (i, label) in labels.iter().enumerate() {
        let x = f64::from(LEFT) + step * i as f64 + (step - bar) / 2.0;
        let mut base = 0u64;
        svg.raw("<g><title>")
            .text(label)
            .raw(": ")
            .number(totals[i]);
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v > 0 {
                svg.raw(", ").text(&s.name).raw(" ").number(v);
            }
        }
        svg.raw("</title>");
        for (k, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let y0 = f64::from(TOP + plot_h) - y(base + v);
            svg.raw("<rect x=\"")
                .number(format_args!("{x:.1}"))
                .raw("\" y=\"")
                .number(format_args!("{y0:.1}"))
                .raw("\" width=\"")
                .number(format_args!("{bar:.1}"))
                .raw("\" height=\"")
                .number(format_args!("{:.1}", y(v)))
                .raw("\" fill=\"")
                .raw(PALETTE[k.min(MAX_SERIES - 1)])
                .raw("\"/>");
            base += v;
        }
        svg.raw("</g>");
        // Every fourth label fits under its column.
        if i % 4 == 0 {
            svg.raw("<text class=\"tick\" x=\"")
                .number(format_args!("{:.1}", x + bar / 2.0))
                .raw("\" y=\"")
                .number(HEIGHT - 6)
                .raw("\" text-anchor=\"middle\">")
                .text(label)
                .raw("</text>");
        }
    }
    svg.raw("</svg><figcaption><ul class=\"legend\">");
    for (k, s) in series.iter().enumerate() {
        svg.raw("<li><svg class=\"swatch\" viewBox=\"0 0 10 10\" aria-hidden=\"true\"><rect width=\"10\" height=\"10\" fill=\"")
            .raw(PALETTE[k.min(MAX_SERIES - 1)])
            .raw("\"/></svg>")
            .text(&s.name)
            .raw("</li>");
    }
    svg.raw("</ul></figcaption></figure>");
    svg
}

/// The smallest of 1, 2, 5 times a power of ten at or above `n` (at least 1).
fn round_up(n: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for m in [1, 2, 5] {
            if let Some(candidate) = scale.checked_mul(m)
                && candidate >= n
            {
                return candidate;
            }
        }
        match scale.checked_mul(10) {
            Some(next) => scale = next,
            None => return u64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(round_up(0), 1);
        assert_eq!(round_up(3), 5);
        assert_eq!(round_up(11), 20);
        assert_eq!(round_up(200), 200);
        assert_eq!(round_up(201), 500);
    }

    #[test]
    fn columns_stack_to_their_totals_and_names_are_escaped() {
        let labels = vec!["00:00".to_owned(), "01:00".to_owned()];
        let series = vec![
            Series {
                name: "<billing>".to_owned(),
                values: vec![3, 0],
            },
            Series {
                name: "crm".to_owned(),
                values: vec![2, 5],
            },
        ];
        let svg = stacked_columns("Sends", &labels, &series).into_string();
        assert!(
            svg.contains("<title>00:00: 5, &lt;billing&gt; 3, crm 2</title>"),
            "{svg}"
        );
        assert!(svg.contains("<title>01:00: 5, crm 5</title>"), "{svg}");
        assert!(!svg.contains("<billing>"));
        // Three bars: a zero value draws nothing.
        assert_eq!(svg.matches("<rect x=").count(), 3);
        // The top of the axis is the tallest column, 5: a full-height bar of 5.
        assert!(svg.contains(&format!(
            "height=\"{:.1}\"",
            f64::from(HEIGHT - TOP - BOTTOM)
        )));
    }
}
