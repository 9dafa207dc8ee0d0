//! Phone sign-in behind your own web endpoints, with axum: a page posts a number, the
//! server starts a challenge and keeps its id in a signed cookie, the user posts the code,
//! the server verifies it (or resends, by SMS or voice) and shows each outcome in words.
//! The client's IP goes to the limits on every send.
//!
//! ```text
//! cargo run --example axum_mfa        # then open http://127.0.0.1:3000
//! ```
//!
//! Offline: the "SMS" is printed on this terminal instead of sent. Swap the
//! `ConsoleInbox` for a `Router` of real providers to send for real.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use phone_otp::{
    ChallengeId, Channel, HmacKey, KeyRing, Message, OtpService, PhoneNumber, PhoneProvider,
    ProviderError, Purpose, Receipt, ResendError, ResendRequest, StartError, StartRequest,
    StubProvider, VerifyOutcome,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;

/// The cookie holding the pending challenge: `<challenge id>.<HMAC of it>`.
pub const COOKIE: &str = "mfa";

/// What the handlers share.
#[derive(Clone)]
pub struct Mfa {
    otp: OtpService,
    /// Signs the session cookie (its own key, not the OTP key ring's).
    cookie_key: Arc<[u8; 32]>,
    /// Numbers given without `+` are read in this region.
    region: &'static str,
}

/// The routes: `GET /` (the number form), `POST /start`, `GET /code`, `POST /verify`,
/// `POST /resend`. Serve with `into_make_service_with_connect_info::<SocketAddr>()`, so
/// the limits see each client's address.
pub fn app(otp: OtpService, cookie_key: [u8; 32]) -> axum::Router {
    let state = Mfa {
        otp,
        cookie_key: Arc::new(cookie_key),
        region: "JP",
    };
    axum::Router::new()
        .route("/", get(number_form))
        .route("/start", post(start))
        .route("/code", get(code_form))
        .route("/verify", post(verify))
        .route("/resend", post(resend))
        .with_state(state)
}

#[derive(Deserialize)]
struct NumberForm {
    phone: String,
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

#[derive(Deserialize)]
struct ResendForm {
    /// `sms` or `voice`.
    channel: String,
}

async fn number_form() -> Html<String> {
    page(
        "Sign in",
        r#"<form method="post" action="/start">
  <label>Phone number <input name="phone" autocomplete="tel" placeholder="090-1234-5678"></label>
  <button>Send me a code</button>
</form>"#,
    )
}

async fn start(
    State(mfa): State<Mfa>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<NumberForm>,
) -> Response {
    let to = match PhoneNumber::parse_with_region(&form.phone, mfa.region) {
        Ok(to) => to,
        Err(error) => return problem(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string(), "/"),
    };
    // Behind a proxy, take the client's address from the header your proxy sets.
    let request = StartRequest::sms(to, Purpose::SignIn).client_ip(peer.ip());
    match mfa.otp.start(request).await {
        Ok(started) => {
            let mut response = Redirect::to("/code").into_response();
            set_cookie(&mut response, &session_cookie(&mfa, &started.challenge_id));
            response
        }
        Err(StartError::Limited { retry_after, .. }) => problem(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many codes just now. Try again in {} seconds.",
                retry_after.as_secs() + 1
            ),
            "/",
        ),
        Err(StartError::Refused(refusal)) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("We cannot send codes to this number: {refusal}."),
            "/",
        ),
        Err(StartError::AccountLocked) => problem(
            StatusCode::LOCKED,
            "Too many wrong codes for this number. Contact support.",
            "/",
        ),
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The code could not be sent. Try again in a moment.",
            "/",
        ),
    }
}

async fn code_form(State(mfa): State<Mfa>, headers: HeaderMap) -> Response {
    if challenge_of(&mfa, &headers).is_none() {
        return Redirect::to("/").into_response();
    }
    page(
        "Enter the code",
        r#"<form method="post" action="/verify">
  <label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code"></label>
  <button>Verify</button>
</form>
<form method="post" action="/resend"><input type="hidden" name="channel" value="sms"><button>Send a new code</button></form>
<form method="post" action="/resend"><input type="hidden" name="channel" value="voice"><button>Call me instead</button></form>"#,
    )
    .into_response()
}

async fn verify(
    State(mfa): State<Mfa>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some(id) = challenge_of(&mfa, &headers) else {
        return session_expired();
    };
    let outcome = match mfa.otp.verify(&id, &form.code).await {
        Ok(outcome) => outcome,
        // The store is down: never treat that as verified.
        Err(_) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The code could not be checked. Try again in a moment.",
                "/code",
            );
        }
    };
    let (status, text, next) = match outcome {
        VerifyOutcome::Verified { .. } => {
            // Here your app marks the session signed in.
            let mut response = page("Signed in", "<p>Signed in. Welcome.</p>").into_response();
            set_cookie(&mut response, &format!("{COOKIE}=; Max-Age=0; Path=/"));
            return response;
        }
        VerifyOutcome::Mismatch { attempts_left } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("That code is wrong. {attempts_left} attempts left."),
            "/code",
        ),
        VerifyOutcome::Expired => (
            StatusCode::GONE,
            "That code expired. Start over for a new one.".to_owned(),
            "/",
        ),
        VerifyOutcome::AlreadyUsed => (
            StatusCode::CONFLICT,
            "That code was already used. Start over.".to_owned(),
            "/",
        ),
        VerifyOutcome::AttemptsExhausted => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong codes. Start over for a new one.".to_owned(),
            "/",
        ),
        VerifyOutcome::AccountLocked => (
            StatusCode::LOCKED,
            "Too many wrong codes for this account. Contact support.".to_owned(),
            "/",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "We could not find your code. Start over.".to_owned(),
            "/",
        ),
    };
    problem(status, &text, next)
}

async fn resend(
    State(mfa): State<Mfa>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<ResendForm>,
) -> Response {
    let Some(id) = challenge_of(&mfa, &headers) else {
        return session_expired();
    };
    let channel = if form.channel == "voice" {
        Channel::Voice
    } else {
        Channel::Sms
    };
    // The same client IP as the start: a resend is charged to the same limits.
    let request = ResendRequest::new(id).channel(channel).client_ip(peer.ip());
    match mfa.otp.resend_with(request).await {
        Ok(_) => Redirect::to("/code").into_response(),
        Err(ResendError::Limited { retry_after, .. }) => problem(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Please wait {} seconds before asking for another code.",
                retry_after.as_secs() + 1
            ),
            "/code",
        ),
        Err(ResendError::NotPending(_)) => {
            problem(StatusCode::GONE, "This sign-in is over. Start over.", "/")
        }
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The code could not be sent. Try again in a moment.",
            "/code",
        ),
    }
}

/// `mfa=<id>.<tag>`, HttpOnly and SameSite=Strict: scripts cannot read it and other sites
/// cannot post with it. (Add `Secure` when served over HTTPS, as it must be in production.)
fn session_cookie(mfa: &Mfa, id: &ChallengeId) -> String {
    let id = id.to_string();
    let tag = URL_SAFE_NO_PAD.encode(sign(mfa, &id));
    format!("{COOKIE}={id}.{tag}; HttpOnly; SameSite=Strict; Path=/")
}

/// The challenge in the request's cookie, if its signature holds (checked in constant
/// time by `verify_slice`).
fn challenge_of(mfa: &Mfa, headers: &HeaderMap) -> Option<ChallengeId> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(&format!("{COOKIE}=")))?;
    let (id, tag) = value.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(mfa.cookie_key.as_slice()).ok()?;
    mac.update(id.as_bytes());
    mac.verify_slice(&tag).ok()?;
    id.parse().ok()
}

fn sign(mfa: &Mfa, id: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(mfa.cookie_key.as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(id.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

/// No cookie, or one this server did not sign: nothing to verify or resend.
fn session_expired() -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Your session expired. Start over.",
        "/",
    )
}

/// A page with a message and a link onward.
fn problem(status: StatusCode, text: &str, next: &str) -> Response {
    let body = format!(
        "<p>{}</p><p><a href=\"{next}\">Continue</a></p>",
        escape(text)
    );
    (status, page("Phone sign-in", &body)).into_response()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>{0}</title><h1>{0}</h1>\n{body}\n",
        escape(title)
    ))
}

/// Text into HTML: nothing a user typed or a library said can become markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Prints each message on the terminal instead of sending it (offline demo only: a real
/// provider never shows a code to anyone but the phone's owner).
#[derive(Debug, Clone)]
struct ConsoleInbox(StubProvider);

#[async_trait::async_trait]
impl PhoneProvider for ConsoleInbox {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn supports(&self, channel: Channel) -> bool {
        self.0.supports(channel)
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        println!(
            "[{} to {}] {}",
            message.channel(),
            message.to(),
            message.text().expose_secret()
        );
        self.0.send(message).await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let otp = OtpService::builder()
        // From your secret manager in production; the same on every instance.
        .key_ring(KeyRing::new(HmacKey::generate(1)?))
        .provider(ConsoleInbox(StubProvider::new()))
        .build()?;
    let mut cookie_key = [0u8; 32];
    getrandom::fill(&mut cookie_key)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("open http://{}", listener.local_addr()?);
    let app = app(otp, cookie_key).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
