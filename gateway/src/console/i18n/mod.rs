//! The console's two languages, English and Japanese: chosen by `?lang=`, then the
//! language cookie a switch set, then `Accept-Language`, else English. Every word a page
//! shows is here, so a page never mixes the two.

mod en;
mod ja;

use axum::http::{HeaderMap, header};

/// The cookie that remembers a language switch.
pub(crate) const LANG_COOKIE: &str = "potp_console_lang";

/// A console language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Ja,
}

impl Lang {
    /// The `lang` attribute and cookie value.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ja => "ja",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let primary = text.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Self::En),
            "ja" => Some(Self::Ja),
            _ => None,
        }
    }

    /// The language for a request: `query` (`?lang=`), then `cookie`, then the first
    /// supported language of `Accept-Language` by its weight, else English.
    pub(crate) fn choose(query: Option<&str>, cookie: Option<&str>, headers: &HeaderMap) -> Self {
        if let Some(lang) = query
            .and_then(Self::parse)
            .or_else(|| cookie.and_then(Self::parse))
        {
            return lang;
        }
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let mut best: Option<(u16, Self)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Self::parse) else {
                continue;
            };
            // q=0.8 as thousandths; a malformed weight counts as 1.
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16);
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map_or(Self::En, |(_, lang)| lang)
    }

    /// This language's words.
    pub(crate) fn text(self) -> &'static Strings {
        match self {
            Self::En => &en::EN,
            Self::Ja => &ja::JA,
        }
    }
}

/// Every word the console shows, in one language.
#[derive(Debug)]
pub(crate) struct Strings {
    pub(crate) product: &'static str,
    pub(crate) overview: &'static str,
    pub(crate) sign_in: &'static str,
    pub(crate) sign_out: &'static str,
    pub(crate) sign_in_intro: &'static str,
    pub(crate) admin_key: &'static str,
    pub(crate) key_refused: &'static str,
    pub(crate) key_lacks_scope: &'static str,
    pub(crate) form_expired: &'static str,
    pub(crate) signed_in_as: &'static str,
    pub(crate) role_viewer: &'static str,
    pub(crate) role_admin: &'static str,
    pub(crate) sends_per_hour: &'static str,
    pub(crate) sends_per_hour_note: &'static str,
    pub(crate) no_sends: &'static str,
    pub(crate) last_24h: &'static str,
    pub(crate) system: &'static str,
    pub(crate) requests: &'static str,
    pub(crate) sends: &'static str,
    pub(crate) delivered: &'static str,
    pub(crate) undelivered: &'static str,
    pub(crate) unknown: &'static str,
    pub(crate) delivery_rate: &'static str,
    pub(crate) cost: &'static str,
    pub(crate) total: &'static str,
    pub(crate) refused_requests: &'static str,
    pub(crate) refused_requests_note: &'static str,
    pub(crate) outcome: &'static str,
    pub(crate) none: &'static str,
    pub(crate) refusals: &'static str,
    pub(crate) refusals_note: &'static str,
    pub(crate) limit: &'static str,
    pub(crate) count: &'static str,
    pub(crate) budgets: &'static str,
    pub(crate) budgets_note: &'static str,
    pub(crate) no_budgets: &'static str,
    pub(crate) budget: &'static str,
    pub(crate) used: &'static str,
    pub(crate) cap: &'static str,
    pub(crate) messages: &'static str,
    pub(crate) all_sends: &'static str,
    pub(crate) each_system: &'static str,
    pub(crate) each_country: &'static str,
    pub(crate) unavailable: &'static str,
    pub(crate) language: &'static str,
    pub(crate) systems: &'static str,
    pub(crate) csv_export: &'static str,
    pub(crate) by_day: &'static str,
    pub(crate) by_country: &'static str,
    pub(crate) by_provider: &'static str,
    pub(crate) segments: &'static str,
    pub(crate) from: &'static str,
    pub(crate) to: &'static str,
    pub(crate) show: &'static str,
    pub(crate) audit: &'static str,
    pub(crate) at: &'static str,
    pub(crate) endpoint: &'static str,
    pub(crate) number: &'static str,
    pub(crate) provider: &'static str,
    pub(crate) status: &'static str,
    pub(crate) search: &'static str,
    pub(crate) older: &'static str,
    pub(crate) newest: &'static str,
    pub(crate) record: &'static str,
    pub(crate) attempts: &'static str,
    pub(crate) refused_by: &'static str,
    pub(crate) receipt: &'static str,
    pub(crate) latency: &'static str,
    pub(crate) purpose: &'static str,
    pub(crate) request_id: &'static str,
    pub(crate) channel: &'static str,
    pub(crate) no_record: &'static str,
    pub(crate) audit_csv: &'static str,
    pub(crate) audit_note: &'static str,
    pub(crate) abuse: &'static str,
    pub(crate) conversion_by_country: &'static str,
    pub(crate) conversion_note: &'static str,
    pub(crate) started: &'static str,
    pub(crate) verified: &'static str,
    pub(crate) conversion: &'static str,
    pub(crate) top_prefixes: &'static str,
    pub(crate) prefix: &'static str,
    /// The guard level that refused (`prefix`, `range`, `country`, `country_day`).
    pub(crate) level: &'static str,
    pub(crate) level_prefix: &'static str,
    pub(crate) level_range: &'static str,
    pub(crate) level_country: &'static str,
    pub(crate) level_country_day: &'static str,
    pub(crate) country: &'static str,
    pub(crate) prefix_sends_per_day: &'static str,
    pub(crate) throttled_now: &'static str,
    pub(crate) throttled_note: &'static str,
    pub(crate) guard_off: &'static str,
    pub(crate) floor: &'static str,
    pub(crate) last_refused: &'static str,
    pub(crate) refusals_by_day: &'static str,
    pub(crate) providers: &'static str,
    pub(crate) providers_now: &'static str,
    pub(crate) latency_p50: &'static str,
    pub(crate) latency_p95: &'static str,
    pub(crate) failures: &'static str,
    pub(crate) breaker: &'static str,
    pub(crate) breaker_closed: &'static str,
    pub(crate) breaker_open: &'static str,
    pub(crate) breaker_half_open: &'static str,
    pub(crate) accepted: &'static str,
    pub(crate) by_provider_country: &'static str,
    pub(crate) failures_by_country: &'static str,
    pub(crate) no_router: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) guard_refusals: &'static str,
    pub(crate) sign_in_sso: &'static str,
    pub(crate) or_key: &'static str,
    pub(crate) sso_unavailable: &'static str,
    pub(crate) sso_expired: &'static str,
    pub(crate) sso_refused: &'static str,
    pub(crate) sso_no_role: &'static str,
    pub(crate) keys: &'static str,
    pub(crate) keys_all: &'static str,
    pub(crate) key_id: &'static str,
    pub(crate) key_kind: &'static str,
    pub(crate) scopes: &'static str,
    pub(crate) allowed: &'static str,
    pub(crate) any_address: &'static str,
    pub(crate) created: &'static str,
    pub(crate) expires: &'static str,
    pub(crate) last_used: &'static str,
    pub(crate) state: &'static str,
    pub(crate) state_live: &'static str,
    pub(crate) state_grace: &'static str,
    pub(crate) state_revoked: &'static str,
    pub(crate) state_expired: &'static str,
    pub(crate) actions: &'static str,
    pub(crate) grace_hours: &'static str,
    pub(crate) rotate: &'static str,
    pub(crate) revoke: &'static str,
    pub(crate) revoke_question: &'static str,
    pub(crate) revoke_now: &'static str,
    pub(crate) cancel: &'static str,
    pub(crate) key_revoked: &'static str,
    pub(crate) create_key: &'static str,
    pub(crate) lifetime_days: &'static str,
    pub(crate) key_created: &'static str,
    pub(crate) key_rotated: &'static str,
    pub(crate) secret_once: &'static str,
    pub(crate) secret: &'static str,
    pub(crate) copy: &'static str,
    pub(crate) copied: &'static str,
    pub(crate) admins_only: &'static str,
    pub(crate) no_such_key: &'static str,
    pub(crate) invalid_allowed: &'static str,
    pub(crate) invalid_days: &'static str,
    pub(crate) invalid_grace: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn the_query_then_the_cookie_then_the_browser_choose() {
        let ja = accept("ja-JP,ja;q=0.9,en;q=0.8");
        assert_eq!(Lang::choose(None, None, &ja), Lang::Ja);
        assert_eq!(Lang::choose(None, Some("en"), &ja), Lang::En);
        assert_eq!(
            Lang::choose(Some("ja"), Some("en"), &HeaderMap::new()),
            Lang::Ja
        );
        assert_eq!(
            Lang::choose(None, None, &accept("fr, en;q=0.5, ja;q=0.4")),
            Lang::En
        );
        assert_eq!(Lang::choose(None, None, &accept("fr, ja;q=0")), Lang::En);
        assert_eq!(Lang::choose(Some("xx"), None, &HeaderMap::new()), Lang::En);
    }
}
