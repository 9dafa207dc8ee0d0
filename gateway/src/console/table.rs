//! A titled table section, the shape most console pages repeat: a heading, an optional
//! note, column headings (numbers right-aligned) and rows, or a "none" row.

use super::html::Html;

/// One cell: text, or a number (right-aligned).
pub(crate) enum Cell {
    Text(String),
    Number(String),
}

impl Cell {
    pub(crate) fn text(value: impl Into<String>) -> Self {
        Self::Text(value.into())
    }

    pub(crate) fn number(value: impl std::fmt::Display) -> Self {
        Self::Number(value.to_string())
    }

    /// A share in percent with one decimal (`43.5%`), `-` when there is nothing to share.
    pub(crate) fn percent(part: f64, whole: f64) -> Self {
        if whole > 0.0 {
            Self::Number(format!("{:.1}%", part / whole * 100.0))
        } else {
            Self::Number("-".to_owned())
        }
    }
}

/// A section `id` headed `title`: `headings` (`true`: a number column) over `rows`.
pub(crate) fn section(
    body: &mut Html,
    id: &'static str,
    title: &str,
    note: Option<&str>,
    headings: &[(&str, bool)],
    rows: &[Vec<Cell>],
    empty: &str,
) {
    body.raw("<section aria-labelledby=\"")
        .raw(id)
        .raw("\"><h2 id=\"")
        .raw(id)
        .raw("\">")
        .text(title)
        .raw("</h2>");
    if let Some(note) = note {
        body.raw("<p class=\"note\">").text(note).raw("</p>");
    }
    body.raw("<table><thead><tr>");
    for (heading, numeric) in headings {
        body.raw(if *numeric {
            "<th scope=\"col\" class=\"n\">"
        } else {
            "<th scope=\"col\">"
        })
        .text(heading)
        .raw("</th>");
    }
    body.raw("</tr></thead><tbody>");
    for row in rows {
        body.raw("<tr>");
        for cell in row {
            match cell {
                Cell::Text(text) => body.raw("<td>").text(text).raw("</td>"),
                Cell::Number(text) => body.raw("<td class=\"n\">").text(text).raw("</td>"),
            };
        }
        body.raw("</tr>");
    }
    if rows.is_empty() {
        body.raw("<tr><td colspan=\"")
            .number(headings.len())
            .raw("\">")
            .text(empty)
            .raw("</td></tr>");
    }
    body.raw("</tbody></table></section>");
}
