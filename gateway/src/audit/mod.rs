//! The audit trail: one record per request that reaches an audited handler (the hooks and
//! `/v1`), refused ones included. A send is recorded as `pending` before any provider is
//! called; if that write fails the send is refused (fail closed), so no message goes out
//! unrecorded. The final state (providers tried, segments, status, latency) replaces it
//! before the response is sent, or, if the request is cancelled (the client went away,
//! the request timed out), as the record is dropped. Requests that never authenticated
//! are not recorded. Never a code, a text, a secret or a whole number.

pub(crate) mod layer;
pub mod reconcile;

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use phone_otp::{
    Attempt, AttemptOutcome, ChallengeId, Channel, LimitKind, PhoneNumber, PriceTable, Purpose,
    Relayed, SmsSegments, Started,
};
use tracing::error;

pub(crate) use crate::db::audit_writer::{AuditWriter, audit_writer};
use crate::db::{AuditRecord, AuditWrite};
use crate::problem::Problem;
use crate::state::AppState;
pub(crate) use layer::{AuditHandle, Endpoint, audited};

/// One request's record in the making. Inert when the gateway has no database.
pub(crate) struct Audit {
    writer: Option<Arc<AuditWriter>>,
    /// The gateway audits, but this record has no id: refuse to send.
    unrecordable: bool,
    prices: Option<PriceTable>,
    record: AuditRecord,
    started: Instant,
    /// Whether `reserve` wrote the row, so `finish` updates it instead of inserting.
    reserved: bool,
}

impl Audit {
    /// Starts the record of a request to `endpoint`.
    pub(crate) fn start(state: &AppState, headers: &HeaderMap, endpoint: &'static str) -> Self {
        let mut id = [0u8; 16];
        // Records are upserted by id: without a random id there is no record (and a send
        // is refused by `reserve`), never a shared one.
        let random = getrandom::fill(&mut id).is_ok();
        if !random {
            error!("no random audit record id: this request goes unrecorded and sends nothing");
        }
        Self {
            writer: state.audit.clone().filter(|_| random),
            unrecordable: state.audit.is_some() && !random,
            prices: state.prices.clone(),
            record: AuditRecord {
                id: id.iter().map(|b| format!("{b:02x}")).collect(),
                // A client's id only when it has the strict short form (see
                // `telemetry::keep_valid_request_id`); the gateway's own otherwise.
                request_id: headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .filter(|id| crate::telemetry::is_valid_request_id(id))
                    .unwrap_or("")
                    .to_owned(),
                at: state.now_millis(),
                endpoint: endpoint.to_owned(),
                outcome: "pending".to_owned(),
                ..AuditRecord::default()
            },
            started: Instant::now(),
            reserved: false,
        }
    }

    /// The send's reference for providers: this record's id, so the provider's delivery
    /// receipt finds the row (`Db::record_receipt`), even one its instance never
    /// completed. `None` when nothing is recorded.
    pub(crate) fn reference(&self) -> Option<String> {
        self.writer.as_ref().map(|_| self.record.id.clone())
    }

    /// When the request arrived (for the latency).
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Who called: the calling system, and the key it used (if any).
    pub(crate) fn caller(&mut self, system: &str, key_id: Option<&str>) {
        self.record.system = Some(system.to_owned());
        self.record.key_id = key_id.map(str::to_owned);
    }

    /// Who called, for a surface without keys (Okta's hook).
    pub(crate) fn system(&mut self, system: &str) {
        self.record.system = Some(system.to_owned());
    }

    /// Where and why: country and masked number only.
    pub(crate) fn destination(&mut self, to: &PhoneNumber, channel: Channel, purpose: Purpose) {
        self.record.country = Some(
            to.region()
                .map_or_else(|| "001".to_owned(), |r| r.to_string()),
        );
        let masked = to.masked();
        self.record.prefix = masked.split('*').next().map(str::to_owned);
        self.record.masked_to = Some(masked);
        self.record.channel = Some(channel.as_str().to_owned());
        self.record.purpose = Some(purpose.as_str().to_owned());
    }

    /// Which challenge: a fingerprint of its id, so a verification's record finds its
    /// start's (conversion per country) without the trail holding an id that works.
    pub(crate) fn challenge(&mut self, id: &ChallengeId) {
        self.record.challenge = Some(challenge_fingerprint(id));
    }

    /// The limit that refused the send.
    pub(crate) fn refused_by(&mut self, limit: LimitKind) {
        self.record.refused_by = Some(limit.as_str().to_owned());
    }

    /// An operator's action in the console and what it acted on (`key.revoke sys_abc`),
    /// kept where a send keeps its purpose.
    #[cfg_attr(not(feature = "console"), allow(dead_code))]
    pub(crate) fn action(&mut self, action: &str) {
        self.record.purpose = Some(action.to_owned());
    }

    /// The send is a security notice: recorded as its purpose (`notice:blocked_account`).
    pub(crate) fn notice(&mut self, notice: phone_otp::Notice) {
        self.record.purpose = Some(format!("notice:{}", notice.as_str()));
    }

    /// A relay went out: which providers were tried and how many parts were billed.
    pub(crate) fn relayed(&mut self, relayed: &Relayed) {
        let mut providers = attempts_text(&relayed.attempts);
        if !providers.is_empty() {
            providers.push(' ');
        }
        providers.push_str(&format!("{}:ok", relayed.provider));
        self.record.providers = Some(providers);
        self.record.channel = Some(relayed.channel.as_str().to_owned());
        self.bill(&relayed.provider, relayed.channel, relayed.segments);
    }

    /// Records the parts billed and prices them: an SMS per segment, a call once.
    fn bill(&mut self, provider: &str, channel: Channel, segments: Option<SmsSegments>) {
        self.record.provider = Some(provider.to_owned());
        self.record.segments = segments.map(|s| i64::try_from(s.segments).unwrap_or(i64::MAX));
        let units = segments.map_or(1, |s| u64::try_from(s.segments).unwrap_or(u64::MAX));
        self.price(provider, channel, units);
    }

    /// Prices `units` (SMS segments or calls) by `provider` to the recorded country.
    fn price(&mut self, provider: &str, channel: Channel, units: u64) {
        if let Some(prices) = &self.prices {
            let cost = prices.cost(provider, self.record.country.as_deref(), channel, units);
            self.record.cost_micros = cost.map(|c| i64::try_from(c.0).unwrap_or(i64::MAX));
            self.record.currency = cost.map(|_| prices.currency.clone());
        }
    }

    /// A challenge's code went out: which providers were tried, through which it went, and
    /// how many parts were billed.
    pub(crate) fn challenge_sent(&mut self, started: &Started) {
        let mut providers = attempts_text(&started.attempts);
        if !providers.is_empty() {
            providers.push(' ');
        }
        providers.push_str(&format!("{}:ok", started.provider));
        self.record.providers = Some(providers);
        self.record.channel = Some(started.channel.as_str().to_owned());
        self.bill(&started.provider, started.channel, started.segments);
    }

    /// No provider delivered: what each did.
    pub(crate) fn failed(&mut self, attempts: &[Attempt]) {
        let text = attempts_text(attempts);
        if !text.is_empty() {
            self.record.providers = Some(text);
        }
    }

    /// The write that records the send as pending (see [`AuditHandle::reserve`]), or
    /// `None` when the gateway keeps no trail.
    ///
    /// # Errors
    /// 503 when this record cannot be written (no random id): the send must not happen.
    fn reservation(&mut self) -> Result<Option<(Arc<AuditWriter>, AuditWrite)>, Problem> {
        let Some(writer) = &self.writer else {
            return if self.unrecordable {
                Err(unavailable())
            } else {
                Ok(None)
            };
        };
        self.record.status = 0;
        self.record.latency_ms = elapsed_ms(self.started);
        Ok(Some((
            Arc::clone(writer),
            AuditWrite::Insert(self.record.clone()),
        )))
    }

    /// The pending record is written: `finish` completes it, and a drop marks it
    /// `cancelled`.
    fn reserved(&mut self) {
        self.reserved = true;
    }

    /// Writes the final state. A failure here is logged: the message (if any) is already
    /// out and its pending record stands.
    ///
    /// A request that never authenticated writes nothing: anonymous refusals are counted
    /// (metrics, a log line per network a minute), so a flood of them costs no database
    /// write and does not swell the usage report.
    pub(crate) async fn finish(mut self, status: StatusCode, outcome: &str) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        if self.record.system.is_none() && !self.reserved {
            return;
        }
        self.record.status = i64::from(status.as_u16());
        self.record.outcome = outcome.to_owned();
        self.record.latency_ms = elapsed_ms(self.started);
        let record = std::mem::take(&mut self.record);
        let id = record.id.clone();
        let write = if self.reserved {
            AuditWrite::Complete(record)
        } else {
            AuditWrite::Insert(record)
        };
        if let Err(e) = writer.call(write).await {
            error!(error = %e, record = %id, "audit record could not be completed");
        }
    }
}

/// Writes a reservation; 503 when it cannot be written (nothing may be sent).
async fn write_reservation(writer: &AuditWriter, write: AuditWrite) -> Result<(), Problem> {
    writer.call(write).await.map_err(|e| {
        // Logged once per change of the database's state (`db::health`), not per send.
        tracing::debug!(error = %e, "audit record cannot be written: refusing the send");
        unavailable()
    })
}

fn unavailable() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        "the audit trail cannot be written; nothing was sent",
    )
}

/// Status recorded for a send whose request was cancelled after its record was reserved
/// (nginx's "client closed request"): the provider may or may not have been called.
pub(crate) const CANCELLED_STATUS: i64 = 499;

impl Drop for Audit {
    /// A reserved record whose request never reached `finish` (the client went away or
    /// the request timed out, and the handler was dropped mid-send) is completed as
    /// `cancelled`, never left `pending`.
    fn drop(&mut self) {
        if !self.reserved {
            return;
        }
        let (Some(writer), Ok(runtime)) =
            (self.writer.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let mut record = std::mem::take(&mut self.record);
        record.status = CANCELLED_STATUS;
        record.outcome = "cancelled".to_owned();
        record.latency_ms = elapsed_ms(self.started);
        runtime.spawn(async move {
            let id = record.id.clone();
            if let Err(e) = writer.call(AuditWrite::Complete(record)).await {
                error!(error = %e, record = %id, "cancelled request's audit record could not be completed");
            }
        });
    }
}

/// The first 16 bytes of SHA-256 over the id's text, in hex. Ids are 128 random bits, so
/// the fingerprint cannot be turned back into one.
fn challenge_fingerprint(id: &ChallengeId) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(id.to_string().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// `primary:unavailable`: one provider and what it did (audit records, Okta's metadata).
pub(crate) fn attempt_label(attempt: &Attempt) -> String {
    let outcome = match attempt.outcome {
        AttemptOutcome::Failed(kind) => kind.as_str(),
        AttemptOutcome::SkippedBreakerOpen => "breaker_open",
        AttemptOutcome::SkippedBudgetExhausted => "budget_exhausted",
        AttemptOutcome::SkippedChannelUnsupported => "channel_unsupported",
        AttemptOutcome::SkippedProviderBudget => "provider_budget",
        _ => "skipped",
    };
    format!("{}:{outcome}", attempt.provider)
}

/// `primary:unavailable secondary:timeout`.
fn attempts_text(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(attempt_label)
        .collect::<Vec<_>>()
        .join(" ")
}
