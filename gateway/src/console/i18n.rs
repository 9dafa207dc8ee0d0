//! The console's two languages, English and Japanese: chosen by `?lang=`, then the
//! language cookie a switch set, then `Accept-Language`, else English. Every word a page
//! shows is here, so a page never mixes the two.

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
            Self::En => &EN,
            Self::Ja => &JA,
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

static EN: Strings = Strings {
    product: "phone-otp console",
    overview: "Overview",
    sign_in: "Sign in",
    sign_out: "Sign out",
    sign_in_intro: "Sign in with an API key that has the keys:admin scope (administrator) or usage:read:all (viewer).",
    admin_key: "API key",
    key_refused: "That key is not accepted.",
    key_lacks_scope: "That key has neither keys:admin nor usage:read:all.",
    form_expired: "The form expired. Please try again.",
    signed_in_as: "Signed in as",
    role_viewer: "viewer",
    role_admin: "administrator",
    sends_per_hour: "Sends per hour, last 24 hours",
    sends_per_hour_note: "Messages and calls that went out, by calling system (UTC hours).",
    no_sends: "No sends in the last 24 hours.",
    last_24h: "Last 24 hours by system",
    system: "System",
    requests: "Requests",
    sends: "Sends",
    delivered: "Delivered",
    undelivered: "Not delivered",
    unknown: "Unknown",
    delivery_rate: "Delivery rate",
    cost: "Cost",
    total: "Total",
    refused_requests: "Refused requests, last 24 hours",
    refused_requests_note: "Requests answered with an error, by what the audit trail recorded (every instance).",
    outcome: "Outcome",
    none: "None.",
    refusals: "Refusals by limit",
    refusals_note: "Sends this instance refused since it started.",
    limit: "Limit",
    count: "Count",
    budgets: "Today's budgets",
    budgets_note: "Use of each daily cap today (UTC), read from the shared store.",
    no_budgets: "No daily budgets are configured.",
    budget: "Budget",
    used: "Used",
    cap: "Cap",
    messages: "messages",
    all_sends: "all sends",
    each_system: "each system",
    each_country: "each country",
    unavailable: "The database cannot be read now.",
    language: "日本語",
    systems: "Systems",
    csv_export: "Download as CSV (by day, country and provider)",
    by_day: "By day (UTC)",
    by_country: "By country",
    by_provider: "By provider",
    segments: "SMS parts",
    from: "From",
    to: "To",
    show: "Show",
    sign_in_sso: "Sign in with your organisation's account",
    or_key: "Or sign in with an API key:",
    sso_unavailable: "The identity provider cannot be reached now.",
    sso_expired: "The sign-in expired or did not start here. Please try again.",
    sso_refused: "The identity provider's answer was not accepted.",
    sso_no_role: "Your account has no console role (ask for the administrator or viewer group).",
    keys: "Keys",
    keys_all: "All keys",
    key_id: "Key",
    key_kind: "Kind",
    scopes: "Scopes",
    allowed: "Allowed addresses",
    any_address: "any",
    created: "Created",
    expires: "Expires",
    last_used: "Last used",
    state: "State",
    state_live: "live",
    state_grace: "ending (rotated)",
    state_revoked: "revoked",
    state_expired: "expired",
    actions: "Actions",
    grace_hours: "Grace (hours)",
    rotate: "Rotate",
    revoke: "Revoke",
    revoke_question: "Revoke this key? Every request with it is refused from now on, on every instance.",
    revoke_now: "Revoke the key",
    cancel: "Cancel",
    key_revoked: "Revoked:",
    create_key: "Create a key",
    lifetime_days: "Expires after (days, empty: never)",
    key_created: "Key created",
    key_rotated: "Key rotated",
    secret_once: "This is the only time the secret is shown: copy it now and store it where the system reads its secrets.",
    secret: "Secret",
    copy: "Copy",
    copied: "Copied",
    admins_only: "Only administrators can change keys.",
    no_such_key: "No such live key.",
    invalid_allowed: "The allowed addresses must be CIDR blocks separated by commas.",
    invalid_days: "The lifetime must be 1 to 3650 days.",
    invalid_grace: "The grace period must be 0 to 720 hours.",
};

static JA: Strings = Strings {
    product: "phone-otp コンソール",
    overview: "概要",
    sign_in: "サインイン",
    sign_out: "サインアウト",
    sign_in_intro: "keys:admin スコープ（管理者）または usage:read:all スコープ（閲覧者）を持つ API キーでサインインしてください。",
    admin_key: "API キー",
    key_refused: "このキーは受け付けられません。",
    key_lacks_scope: "このキーには keys:admin も usage:read:all もありません。",
    form_expired: "フォームの有効期限が切れました。もう一度お試しください。",
    signed_in_as: "サインイン中",
    role_viewer: "閲覧者",
    role_admin: "管理者",
    sends_per_hour: "1時間ごとの送信数（過去24時間）",
    sends_per_hour_note: "送信されたメッセージと通話の数、呼び出し元システム別（UTC）。",
    no_sends: "過去24時間に送信はありません。",
    last_24h: "過去24時間のシステム別集計",
    system: "システム",
    requests: "リクエスト",
    sends: "送信",
    delivered: "配信済み",
    undelivered: "未配信",
    unknown: "不明",
    delivery_rate: "配信率",
    cost: "費用",
    total: "合計",
    refused_requests: "拒否されたリクエスト（過去24時間）",
    refused_requests_note: "エラーで応答したリクエスト、監査記録の結果別（全インスタンス）。",
    outcome: "結果",
    none: "なし。",
    refusals: "制限による拒否",
    refusals_note: "このインスタンスが起動以降に拒否した送信。",
    limit: "制限",
    count: "件数",
    budgets: "本日の予算",
    budgets_note: "本日（UTC）の各日次上限の使用量。共有ストアから読み取り。",
    no_budgets: "日次予算は設定されていません。",
    budget: "予算",
    used: "使用量",
    cap: "上限",
    messages: "通",
    all_sends: "全送信",
    each_system: "システムごと",
    each_country: "国ごと",
    unavailable: "現在データベースを読み取れません。",
    language: "English",
    systems: "システム",
    csv_export: "CSV でダウンロード（日・国・プロバイダー別）",
    by_day: "日別（UTC）",
    by_country: "国別",
    by_provider: "プロバイダー別",
    segments: "SMS 分割数",
    from: "開始",
    to: "終了",
    show: "表示",
    sign_in_sso: "組織のアカウントでサインイン",
    or_key: "または API キーでサインイン：",
    sso_unavailable: "現在 ID プロバイダーに接続できません。",
    sso_expired: "サインインの有効期限が切れたか、ここで開始されていません。もう一度お試しください。",
    sso_refused: "ID プロバイダーの応答を受け付けられませんでした。",
    sso_no_role: "このアカウントにはコンソールのロールがありません（管理者または閲覧者グループへの追加を依頼してください）。",
    keys: "キー",
    keys_all: "すべてのキー",
    key_id: "キー ID",
    key_kind: "種類",
    scopes: "スコープ",
    allowed: "許可するアドレス",
    any_address: "制限なし",
    created: "作成",
    expires: "有効期限",
    last_used: "最終使用",
    state: "状態",
    state_live: "有効",
    state_grace: "終了予定（ローテーション済み）",
    state_revoked: "失効",
    state_expired: "期限切れ",
    actions: "操作",
    grace_hours: "猶予（時間）",
    rotate: "ローテーション",
    revoke: "失効させる",
    revoke_question: "このキーを失効させますか？ 以後このキーによるリクエストはすべてのインスタンスで拒否されます。",
    revoke_now: "キーを失効させる",
    cancel: "キャンセル",
    key_revoked: "失効しました：",
    create_key: "キーを作成",
    lifetime_days: "有効日数（空欄：無期限）",
    key_created: "キーを作成しました",
    key_rotated: "キーをローテーションしました",
    secret_once: "シークレットが表示されるのは今回だけです。今すぐコピーし、システムがシークレットを読み込む場所に保管してください。",
    secret: "シークレット",
    copy: "コピー",
    copied: "コピーしました",
    admins_only: "キーを変更できるのは管理者だけです。",
    no_such_key: "有効なキーが見つかりません。",
    invalid_allowed: "許可するアドレスはカンマ区切りの CIDR ブロックで指定してください。",
    invalid_days: "有効日数は 1〜3650 日で指定してください。",
    invalid_grace: "猶予は 0〜720 時間で指定してください。",
};

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
