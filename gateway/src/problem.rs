//! Errors for the gateway's own endpoints as RFC 9457 problem details
//! (`application/problem+json`): `type` (`urn:phone-otp:problem:<code>`), `title`,
//! `status`, `detail`, plus the stable `code` and, when waiting helps, `retry_after` (also
//! sent as `Retry-After`). Routes whose callers expect another shape keep it: Okta's hook
//! answers in Okta's (see `routes::okta`), the Auth0 hook in the `{"error":{"code",
//! "message"}}` its shipped Actions read ([`legacy_shape`]).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phone_otp::{
    Channel, LimitKind, NotPending, PolicyRefusal, ProviderError, ProviderErrorKind, RelayError,
    ResendError, SendRefusal, StartError,
};
use serde_json::{Value, json};

/// The media type of a problem details body (RFC 9457 section 3).
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// One error answer.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
    /// The limit that refused, for the audit trail.
    pub(crate) limit: Option<LimitKind>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            limit: None,
        }
    }

    pub(crate) fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The problem details document.
    pub(crate) fn to_json(&self) -> Value {
        serde_json::to_value(ProblemDocument {
            kind: format!("urn:phone-otp:problem:{}", self.code),
            title: title(self.code),
            status: self.status.as_u16(),
            detail: self.message.clone(),
            code: self.code.to_owned(),
            retry_after: self.retry_after.map(whole_seconds),
        })
        .unwrap_or_default()
    }

    /// The `{"error":{"code","message","retry_after"}}` envelope of routes that keep it.
    fn to_legacy_json(&self) -> Value {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(wait) = self.retry_after {
            body["error"]["retry_after"] = json!(whole_seconds(wait));
        }
        body
    }

    fn respond(self, body: Value, content_type: &'static str) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body.to_string(),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            set_retry_after(&mut response, wait);
        }
        // The audit record and the metrics count the request under the problem's code.
        response
            .extensions_mut()
            .insert(crate::outcome::Outcome(self.code));
        response.extensions_mut().insert(self);
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.to_json();
        self.respond(body, PROBLEM_JSON)
    }
}

/// An error answer on `/v1` (RFC 9457 problem details), as `application/problem+json`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemDocument {
    /// `urn:phone-otp:problem:<code>`: what kind of problem, for programs.
    #[serde(rename = "type")]
    kind: String,
    /// The same short words for every occurrence of this kind.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What happened this time, for people.
    detail: String,
    /// The stable code (`rate_limited`, `invalid_number`, ...).
    code: String,
    /// Seconds to wait before a retry can succeed (also `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

/// The same words for every occurrence of a code (`rate_limited` -> `Rate limited`).
fn title(code: &str) -> String {
    let mut title = code.replace('_', " ");
    if let Some(first) = title.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    title
}

/// A route layer that answers its problems in the `{"error":{...}}` envelope instead
/// (`map_response`): the Auth0 hook, whose Actions already deployed read it.
pub(crate) async fn legacy_shape(response: Response) -> Response {
    match response.extensions().get::<Problem>().cloned() {
        Some(problem) => {
            let body = problem.to_legacy_json();
            problem.respond(body, "application/json")
        }
        None => response,
    }
}

/// `Retry-After: <whole seconds>` on `response`.
pub(crate) fn set_retry_after(response: &mut Response, wait: Duration) {
    if let Ok(value) = HeaderValue::try_from(whole_seconds(wait).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

/// Seconds, rounded up: `Retry-After` is whole seconds, and rounding down would invite a
/// retry that is still refused.
pub(crate) fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A field the library refused (`InvalidRequest` of any operation).
pub(crate) fn invalid_request(reason: &'static str) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", reason)
}

/// The destination policy refused the number: retrying cannot help.
pub(crate) fn policy_refused(refusal: &PolicyRefusal) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "destination_refused",
        format!("destination refused by policy: {refusal}"),
    )
}

/// A send limit refused: 429 with `Retry-After`.
pub(crate) fn rate_limited(limit: LimitKind, retry_after: Duration) -> Problem {
    Problem {
        limit: Some(limit),
        ..Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{limit} rate limit reached"),
        )
        .retry_after(retry_after)
    }
}

/// No configured provider delivers on this channel.
pub(crate) fn channel_unsupported(channel: Channel) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "channel_unsupported",
        format!("no configured provider delivers {channel}"),
    )
}

/// The store failed, so nothing was sent (fail closed).
pub(crate) fn store_unavailable() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the store is unavailable; nothing was sent",
    )
}

/// The account reached the failure cap.
pub(crate) fn account_locked() -> Problem {
    Problem::new(
        StatusCode::LOCKED,
        "account_locked",
        "too many failed verifications",
    )
}

/// Randomness or another internal failure.
pub(crate) fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

/// A send refused before anything was sent, whichever operation met it.
impl From<SendRefusal> for Problem {
    fn from(refusal: SendRefusal) -> Self {
        match refusal {
            SendRefusal::InvalidRequest(reason) => invalid_request(reason),
            SendRefusal::Destination(refusal) => policy_refused(&refusal),
            SendRefusal::AccountLocked => account_locked(),
            SendRefusal::Limited {
                limit: LimitKind::Duplicate,
                ..
            } => Self {
                limit: Some(LimitKind::Duplicate),
                ..Self::new(
                    StatusCode::CONFLICT,
                    "duplicate_request",
                    "this request (its Idempotency-Key or request_id) was already sent, or may have been: nothing was sent again",
                )
            },
            SendRefusal::Limited { limit, retry_after } => rate_limited(limit, retry_after),
            SendRefusal::ChannelUnsupported(channel) => channel_unsupported(channel),
            _ => internal(),
        }
    }
}

/// A relay that sent nothing. 4xx when retrying cannot help (bad input, a refused
/// destination, a recipient that cannot receive), 429 or 5xx when it can (limits, provider
/// outages): Auth0 Actions retry on exactly those.
impl From<RelayError> for Problem {
    fn from(error: RelayError) -> Self {
        if let Some(refusal) = error.refusal() {
            return refusal.into();
        }
        match error {
            RelayError::TextRefused(refusal) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "text_refused",
                format!("{refusal}: a relay carries a code, never free text"),
            ),
            RelayError::Expired => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "code_expired",
                "the code has already expired",
            ),
            RelayError::Delivery(failure) => failure.into(),
            RelayError::Store(_) => store_unavailable(),
            _ => internal(),
        }
    }
}

/// A start that sent nothing (one whose outcome is unknown is answered, not refused).
impl From<StartError> for Problem {
    fn from(error: StartError) -> Self {
        if let Some(refusal) = error.refusal() {
            return refusal.into();
        }
        match error {
            StartError::Store(_) => store_unavailable(),
            StartError::Delivery(failure) | StartError::DeliveryUnknown { error: failure, .. } => {
                failure.into()
            }
            _ => internal(),
        }
    }
}

/// A resend that sent nothing.
impl From<ResendError> for Problem {
    fn from(error: ResendError) -> Self {
        if let Some(refusal) = error.refusal() {
            return refusal.into();
        }
        match error {
            ResendError::NotPending(state) => {
                let (status, code) = match state {
                    NotPending::Expired => (StatusCode::GONE, "expired"),
                    NotPending::AlreadyUsed => (StatusCode::CONFLICT, "already_used"),
                    NotPending::AttemptsExhausted => {
                        (StatusCode::TOO_MANY_REQUESTS, "attempts_exhausted")
                    }
                    _ => (StatusCode::NOT_FOUND, "not_found"),
                };
                Self::new(status, code, state.to_string())
            }
            ResendError::Store(_) => store_unavailable(),
            ResendError::Delivery(failure) => failure.into(),
            _ => internal(),
        }
    }
}

/// No provider delivered.
impl From<ProviderError> for Problem {
    fn from(failure: ProviderError) -> Self {
        delivery_problem(failure.kind(), failure.retry_after())
    }
}

/// A provider failure: about the recipient (permanent) or the provider (transient).
pub(crate) fn delivery_problem(kind: ProviderErrorKind, retry_after: Option<Duration>) -> Problem {
    if kind.is_about_recipient()
        || matches!(
            kind,
            ProviderErrorKind::PolicyRefused | ProviderErrorKind::NoRoute
        )
    {
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "recipient_unreachable",
            format!(
                "the recipient cannot receive this message ({})",
                kind.as_str()
            ),
        );
    }
    let problem = Problem::new(
        StatusCode::BAD_GATEWAY,
        "delivery_failed",
        format!("no provider could deliver ({})", kind.as_str()),
    );
    match retry_after {
        Some(wait) => problem.retry_after(wait),
        None => problem,
    }
}
