//! HTML written on the server: [`Html`] escapes every piece of text it is given, so a
//! system's name or an audit field can never become markup, and [`page`] wraps a page's
//! body in the shared layout (header, navigation, sign-out form, language switch).

use std::fmt::Write as _;

use super::i18n::Lang;
use super::session::{Role, Session};

/// A page being written.
#[derive(Debug, Default)]
pub(crate) struct Html(String);

impl Html {
    /// Markup written by the console itself, never data.
    pub(crate) fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Text, escaped for an element's content or a quoted attribute.
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        for c in text.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        self
    }

    /// A message that something went wrong, announced to screen readers.
    pub(crate) fn alert(&mut self, text: &str) -> &mut Self {
        self.raw("<p class=\"error\" role=\"alert\">")
            .text(text)
            .raw("</p>")
    }

    /// A number (nothing to escape).
    pub(crate) fn number(&mut self, n: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.0, "{n}");
        self
    }

    /// Markup the console built from escaped parts (a chart).
    pub(crate) fn built(&mut self, markup: &Html) -> &mut Self {
        self.0.push_str(&markup.0);
        self
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// Which page the navigation marks as current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Systems,
    Abuse,
    Providers,
    Audit,
    Keys,
    SignIn,
}

/// A whole page: the layout around `body`. `session` is `None` on the sign-in page.
pub(crate) fn page(
    lang: Lang,
    title: &str,
    nav: Nav,
    session: Option<&Session>,
    path: &'static str,
    body: &Html,
) -> String {
    let t = lang.text();
    let mut html = Html::default();
    html.raw("<!doctype html>\n<html lang=\"")
        .raw(lang.code())
        .raw("\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>")
        .text(title)
        .raw(" · ")
        .text(t.product)
        .raw("</title><link rel=\"icon\" href=\"/console/assets/favicon.svg\" type=\"image/svg+xml\"><link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body><header><a class=\"brand\" href=\"/console/overview\">")
        .text(t.product)
        .raw("</a>");
    if session.is_some() {
        html.raw("<nav aria-label=\"main\">");
        let links: [(Nav, &'static str, &str); 6] = [
            (Nav::Overview, "/console/overview", t.overview),
            (Nav::Systems, "/console/systems", t.systems),
            (Nav::Abuse, "/console/abuse", t.abuse),
            (Nav::Providers, "/console/providers", t.providers),
            (Nav::Audit, "/console/audit", t.audit),
            (Nav::Keys, "/console/keys", t.keys),
        ];
        for (target, href, name) in links {
            html.raw("<a href=\"").raw(href).raw("\"");
            if nav == target {
                html.raw(" aria-current=\"page\"");
            }
            html.raw(">").text(name).raw("</a>");
        }
        html.raw("</nav>");
    }
    html.raw("<div class=\"tools\"><a class=\"lang\" href=\"")
        .raw(path)
        .raw(match lang {
            Lang::En => "?lang=ja\" lang=\"ja\" hreflang=\"ja\">",
            Lang::Ja => "?lang=en\" lang=\"en\" hreflang=\"en\">",
        })
        .text(t.language)
        .raw("</a>");
    if let Some(session) = session {
        html.raw("<span class=\"who\">")
            .text(t.signed_in_as)
            .raw(" <strong>")
            .text(&session.operator)
            .raw("</strong> (")
            .text(match session.role {
                Role::Viewer => t.role_viewer,
                Role::Admin => t.role_admin,
            })
            .raw(")</span><form method=\"post\" action=\"/console/signout\"><input type=\"hidden\" name=\"csrf\" value=\"")
            .text(&session.csrf)
            .raw("\"><button type=\"submit\">")
            .text(t.sign_out)
            .raw("</button></form>");
    }
    html.raw("</div></header><main><h1>")
        .text(title)
        .raw("</h1>")
        .built(body)
        .raw("</main></body></html>\n");
    html.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_markup_is_not() {
        let mut html = Html::default();
        html.raw("<td>")
            .text("<script>alert('x')</script> & \"q\"")
            .raw("</td>");
        assert_eq!(
            html.into_string(),
            "<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</td>"
        );
    }
}
