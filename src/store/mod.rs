//! Where challenges and rate-limit state live.
//!
//! Every [`OtpStore`] method is one atomic domain step, never a read followed by a write
//! from the caller: in memory one lock scope on one shard, in Redis one Lua script.

mod failure_table;
mod limit_table;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod totp;

use std::error::Error as StdError;
use std::fmt;

use async_trait::async_trait;
use thiserror::Error;

pub use limit_table::DEFAULT_LIMIT_KEY_CAPACITY;
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use totp::{FactorWrite, StepDecision, TotpFactor};

use crate::challenge::{
    AccountId, Candidates, ChallengeId, Digest, NotPending, SealedDestination, VerifyOutcome,
};
use crate::clock::Timestamp;
use crate::limit::{Admission, Counts, FailureCap, Limit, LimitKey};
use crate::message::{Channel, Locale, Purpose};
use crate::phone::PhoneNumber;

/// How many codes of one challenge stay valid: the newest three, so a late SMS does not lock
/// the user out after a resend.
pub const CODES_PER_CHALLENGE: usize = 3;

/// How long a record is kept after it expires, so `verify` can still say `Expired` or
/// `AlreadyUsed` (rather than `NotFound`) to a slow user.
pub const RETAIN_AFTER_EXPIRY: std::time::Duration = std::time::Duration::from_secs(600);

/// A store failed. Never a verified outcome.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or failed the operation.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// The backend returned data this crate did not write.
    #[error("store returned a malformed record: {0}")]
    Corrupt(&'static str),
    /// A challenge with this id exists already (random keys make this a bug).
    #[error("challenge id already exists")]
    Duplicate,
    /// `insert` was given a key that [`OtpStore::reserve_key`] of this store did not hand
    /// out (or whose reservation was swept).
    #[error("challenge key was not reserved by this store")]
    UnreservedKey,
    /// The store holds as many challenges as it can; starts fail until some expire.
    #[error("store is full: {0}")]
    Full(&'static str),
    /// The store was configured in a way it cannot work with.
    #[error("invalid store configuration: {0}")]
    Config(&'static str),
}

/// A new challenge, as handed to [`OtpStore::insert`].
#[derive(Clone)]
pub struct ChallengeRecord {
    /// Its id.
    pub id: ChallengeId,
    /// The digest of its first code.
    pub digest: Digest,
    /// When it stops verifying.
    pub expires_at: Timestamp,
    /// Wrong attempts allowed.
    pub attempts_left: u8,
    /// What it is for.
    pub purpose: Purpose,
    /// How it was delivered (resends use the same channel by default).
    pub channel: Channel,
    /// The language of its messages.
    pub locale: Locale,
    /// Where the codes go, for a store in this process's memory.
    pub destination: PhoneNumber,
    /// Where the codes go, sealed, for a store shared over the network: a dump of it must
    /// reveal no numbers.
    pub sealed_destination: SealedDestination,
    /// The user it belongs to, if the caller said.
    pub subject: Option<String>,
    /// The tenant its sends are charged to, if any.
    pub tenant: Option<String>,
    /// Whether it was started with a client IP (a resend must then name one).
    pub client_ip_given: bool,
    /// Whether its codes are bound to caller context bytes (a resend must then give them).
    pub context_bound: bool,
}

impl ChallengeRecord {
    /// The record of a new challenge delivered as `pending` describes.
    pub fn new(
        id: ChallengeId,
        digest: Digest,
        attempts_left: u8,
        pending: &PendingChallenge,
        sealed_destination: SealedDestination,
    ) -> Self {
        Self {
            id,
            digest,
            expires_at: pending.expires_at,
            attempts_left,
            purpose: pending.purpose,
            channel: pending.channel,
            locale: pending.locale,
            destination: pending.destination.clone(),
            sealed_destination,
            subject: pending.subject.clone(),
            tenant: pending.tenant.clone(),
            client_ip_given: pending.client_ip_given,
            context_bound: pending.context_bound,
        }
    }
}

impl fmt::Debug for ChallengeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeRecord")
            .field("id", &self.id)
            .field("digest", &self.digest)
            .field("expires_at", &self.expires_at)
            .field("attempts_left", &self.attempts_left)
            .field("purpose", &self.purpose)
            .field("channel", &self.channel)
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

/// Where a challenge's codes go, as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredDestination {
    /// In clear: a store in this process's memory.
    Number(PhoneNumber),
    /// Sealed ([`ChallengeRecord::sealed_destination`]): a store shared over the network.
    /// The service opens it with its key ring.
    Sealed(SealedDestination),
}

/// What a store knows of a live challenge, for a resend: the destination as the store
/// keeps it, in clear or sealed.
pub type PendingRecord = PendingChallenge<StoredDestination>;

/// What a resend needs to know about a live challenge. `D` is how its destination is
/// known: a [`PhoneNumber`] to the service, a [`StoredDestination`] to a store.
#[derive(Debug, Clone)]
pub struct PendingChallenge<D = PhoneNumber> {
    /// Where its codes go.
    pub destination: D,
    /// The channel it was started on.
    pub channel: Channel,
    /// Its language.
    pub locale: Locale,
    /// What it is for.
    pub purpose: Purpose,
    /// Its user.
    pub subject: Option<String>,
    /// Its tenant.
    pub tenant: Option<String>,
    /// Whether it was started with a client IP.
    pub client_ip_given: bool,
    /// Whether its codes are bound to caller context bytes.
    pub context_bound: bool,
    /// When it expires.
    pub expires_at: Timestamp,
}

impl<D> PendingChallenge<D> {
    /// The same challenge with its destination known as `destination` (e.g. opened).
    pub fn with_destination<E>(self, destination: E) -> PendingChallenge<E> {
        PendingChallenge {
            destination,
            channel: self.channel,
            locale: self.locale,
            purpose: self.purpose,
            subject: self.subject,
            tenant: self.tenant,
            client_ip_given: self.client_ip_given,
            context_bound: self.context_bound,
            expires_at: self.expires_at,
        }
    }
}

/// What [`OtpStore::admit_send`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAdmission {
    /// The account has too many consecutive failed verifications: nothing was charged.
    AccountLocked,
    /// The account may send; the limits decided this.
    Limits(Admission),
}

/// Storage for challenges and rate-limit state.
///
/// # Tenants
///
/// A challenge belongs to the tenant it was started for ([`ChallengeRecord::tenant`]).
/// `check`, `pending` and `add_code` take the tenant the caller acts for and treat a
/// challenge of any other tenant (or of a tenant, when given none) exactly as an unknown
/// id: `NotFound`, and nothing counted or changed. The comparison is part of the same
/// atomic step as the rest of the operation, so whoever learns another tenant's challenge
/// id can neither spend its attempts nor send its codes.
#[async_trait]
pub trait OtpStore: Send + Sync + fmt::Debug {
    /// Turns 128 fresh random bits into the key of a challenge about to be inserted (the
    /// first 16 bytes of its [`ChallengeId`]). The default keeps them as they are.
    ///
    /// A store may overwrite the first four bytes with where it will keep the record, and
    /// must leave the other twelve (96 random bits) alone so ids stay unguessable:
    /// [`MemoryStore`] reserves a slot here and writes its number, so a lookup is one memory
    /// access. A reservation that no `insert` follows must be reclaimed by the store. A store
    /// that wraps another must forward this method, or the inner store refuses the insert
    /// ([`StoreError::UnreservedKey`]).
    ///
    /// # Errors
    /// If the store cannot reserve room for another challenge.
    fn reserve_key(&self, random: [u8; 16], now: Timestamp) -> Result<[u8; 16], StoreError> {
        let _ = now;
        Ok(random)
    }

    /// Stores a new challenge. `now` lets a store drop dead records as it goes.
    async fn insert(&self, challenge: ChallengeRecord, now: Timestamp) -> Result<(), StoreError>;

    /// In one atomic step: finds the challenge (under its store key, the id's account and
    /// `tenant`: see [Tenants](OtpStore#tenants)), checks expiry, attempts and the
    /// account's consecutive failures against `cap` (`AccountLocked` past it), compares the candidates with its live digests in
    /// constant time, and either consumes it (`Verified`, clearing the account's failures)
    /// or counts a wrong attempt on it and a failure on the account. With no candidates it
    /// counts a wrong attempt.
    async fn check(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        candidates: &[Digest],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<VerifyOutcome, StoreError>;

    /// `check` for a store that answers from this process's memory, without a future:
    /// `prepare` computes the candidates and reads the clock, and the store calls it once,
    /// after it has started fetching the record, so the fetch overlaps the HMAC.
    ///
    /// The default returns `None`: the store needs I/O, and the caller calls `prepare`
    /// itself and then [`OtpStore::check`]. [`MemoryStore`] answers here. A store that wraps
    /// another should forward this method, or verify takes the slower path.
    fn check_prepared(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        cap: FailureCap,
        prepare: &mut dyn FnMut() -> (Candidates, Timestamp),
    ) -> Option<Result<VerifyOutcome, StoreError>> {
        let _ = (id, tenant, cap, prepare);
        None
    }

    /// Reads a live challenge of `tenant` for a resend, or says why it is not live.
    async fn pending(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<PendingRecord, NotPending>, StoreError>;

    /// Adds the digest of a resent code if the challenge of `tenant` is still live, keeping
    /// the newest [`CODES_PER_CHALLENGE`] digests.
    async fn add_code(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Result<(), NotPending>, StoreError>;

    /// Deletes a challenge (a send failed: it must not stay usable).
    async fn remove(&self, id: &ChallengeId) -> Result<(), StoreError>;

    /// Decides every limit of one send (a GCRA step each) and, only if all allow it,
    /// charges them all, in one atomic step. A refusal names the first refusing limit in
    /// the order given and writes nothing.
    async fn throttle(&self, limits: &[Limit], now: Timestamp) -> Result<Admission, StoreError>;

    /// Refuses a send for an account with `max_failures` or more consecutive failed
    /// verifications, and otherwise [`throttle`](Self::throttle)s it: the two reads a send
    /// starts with, in one step where the store can (one script on one Redis server, so a
    /// start there takes two round trips with its insert). A locked account charges
    /// nothing.
    async fn admit_send(
        &self,
        account: AccountId,
        max_failures: u32,
        limits: &[Limit],
        now: Timestamp,
    ) -> Result<SendAdmission, StoreError> {
        if self.failures(account, now).await? >= max_failures {
            return Ok(SendAdmission::AccountLocked);
        }
        Ok(SendAdmission::Limits(self.throttle(limits, now).await?))
    }

    /// Forgets the state of `keys`, as if they had never been charged: a relay whose
    /// delivery failed releases its request key, so the caller's retry is sent rather
    /// than refused as a duplicate of a message that never went out.
    async fn release_limits(&self, keys: &[LimitKey]) -> Result<(), StoreError> {
        let _ = keys;
        Err(StoreError::Config("this store does not release limits"))
    }

    /// The account's consecutive failed verifications now (0 once forgotten).
    async fn failures(&self, account: AccountId, now: Timestamp) -> Result<u32, StoreError>;

    /// Forgets the account's failures (an administrator unlocked it).
    async fn reset_failures(&self, account: AccountId) -> Result<(), StoreError>;

    /// Checks the store can serve requests now (a readiness probe). An in-process store
    /// always can.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Counts one verification on each conversion-guard key given (with its bucket length
    /// in ms), in one step. Needed only with [`ConversionGuard`](crate::ConversionGuard);
    /// a store without it cannot run the guard.
    async fn credit_conversions(
        &self,
        keys: &[(LimitKey, u64)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let _ = (keys, now);
        Err(StoreError::Config("this store does not count conversions"))
    }

    /// The sends and verifications in one conversion-guard key's window now.
    async fn conversion_counts(
        &self,
        key: &LimitKey,
        bucket_millis: u64,
        now: Timestamp,
    ) -> Result<Counts, StoreError> {
        let _ = (key, bucket_millis, now);
        Err(StoreError::Config("this store does not count conversions"))
    }

    /// What each daily budget key has used today (0 when nothing was charged), for
    /// dashboards and alerts; reads only.
    async fn budget_used(&self, keys: &[LimitKey], now: Timestamp) -> Result<Vec<u64>, StoreError> {
        let _ = (keys, now);
        Err(StoreError::Config("this store does not report budget use"))
    }

    /// Where a challenge's codes went, whatever its state (the guard credits a verified
    /// code to its number's prefix); `None` once the record is gone.
    async fn destination(&self, id: &ChallengeId) -> Result<Option<StoredDestination>, StoreError> {
        let _ = id;
        Ok(None)
    }

    /// The account's authenticator-app factor, if it has one.
    async fn totp_factor(&self, account: AccountId) -> Result<Option<TotpFactor>, StoreError> {
        let _ = account;
        Err(StoreError::Config(NO_TOTP))
    }

    /// What a TOTP check reads of the account's factor: the sealed secret and whether it
    /// is confirmed (not the recovery digests, which a check has no use for). The default
    /// reads the whole factor.
    async fn totp_secret(&self, account: AccountId) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        Ok(self
            .totp_factor(account)
            .await?
            .map(|factor| (factor.sealed_secret, factor.confirmed)))
    }

    /// Stores the account's factor, replacing what `when` allows, in one atomic step;
    /// `false` when it was not written.
    async fn put_totp_factor(
        &self,
        account: AccountId,
        factor: TotpFactor,
        when: FactorWrite,
    ) -> Result<bool, StoreError> {
        let _ = (account, factor, when);
        Err(StoreError::Config(NO_TOTP))
    }

    /// Removes the account's factor.
    async fn remove_totp_factor(&self, account: AccountId) -> Result<(), StoreError> {
        let _ = account;
        Err(StoreError::Config(NO_TOTP))
    }

    /// In one atomic step, if the account's factor still holds `expected_secret` (it was
    /// not re-enrolled or disabled meanwhile): marks it confirmed when `confirm`, and
    /// replaces the sealed secret with `resealed` when given. The last step and the
    /// recovery codes are left as they are, so a concurrent verify or recovery code is
    /// never undone. `false` when nothing was changed.
    async fn update_totp_factor(
        &self,
        account: AccountId,
        expected_secret: &[u8],
        confirm: bool,
        resealed: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let _ = (account, expected_secret, confirm, resealed);
        Err(StoreError::Config(NO_TOTP))
    }

    /// In one atomic step: refuses past the account's failure cap, refuses a `step` not
    /// newer than the last one accepted (a replayed code), else records it as the last
    /// accepted step and clears the account's failures. Of concurrent calls with one step,
    /// exactly one is `Accepted`.
    async fn accept_totp_step(
        &self,
        account: AccountId,
        step: u64,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        let _ = (account, step, cap, now);
        Err(StoreError::Config(NO_TOTP))
    }

    /// In one atomic step: refuses past the failure cap, else removes the first of
    /// `digests` the factor holds (`Accepted`, failures cleared) or says it holds none
    /// (`Replayed`: used before, or never issued). A code has one digest per key of the
    /// ring, since a factor moved after a rotation keeps the digests made under the old key.
    async fn use_recovery_code(
        &self,
        account: AccountId,
        digests: &[[u8; 32]],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        let _ = (account, digests, cap, now);
        Err(StoreError::Config(NO_TOTP))
    }

    /// Counts one failed verification against the account (the same count SMS codes
    /// use, so alternating factors brings no extra guesses); returns the new count.
    async fn count_failure(
        &self,
        account: AccountId,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let _ = (account, cap, now);
        Err(StoreError::Config(NO_TOTP))
    }
}

const NO_TOTP: &str = "this store does not keep TOTP factors";

#[async_trait]
impl<S: OtpStore + ?Sized> OtpStore for std::sync::Arc<S> {
    fn reserve_key(&self, random: [u8; 16], now: Timestamp) -> Result<[u8; 16], StoreError> {
        (**self).reserve_key(random, now)
    }

    async fn insert(&self, challenge: ChallengeRecord, now: Timestamp) -> Result<(), StoreError> {
        (**self).insert(challenge, now).await
    }

    async fn check(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        candidates: &[Digest],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<VerifyOutcome, StoreError> {
        (**self).check(id, tenant, candidates, cap, now).await
    }

    fn check_prepared(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        cap: FailureCap,
        prepare: &mut dyn FnMut() -> (Candidates, Timestamp),
    ) -> Option<Result<VerifyOutcome, StoreError>> {
        (**self).check_prepared(id, tenant, cap, prepare)
    }

    async fn pending(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<PendingRecord, NotPending>, StoreError> {
        (**self).pending(id, tenant, now).await
    }

    async fn add_code(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Result<(), NotPending>, StoreError> {
        (**self).add_code(id, tenant, digest, now).await
    }

    async fn remove(&self, id: &ChallengeId) -> Result<(), StoreError> {
        (**self).remove(id).await
    }

    async fn throttle(&self, limits: &[Limit], now: Timestamp) -> Result<Admission, StoreError> {
        (**self).throttle(limits, now).await
    }

    async fn admit_send(
        &self,
        account: AccountId,
        max_failures: u32,
        limits: &[Limit],
        now: Timestamp,
    ) -> Result<SendAdmission, StoreError> {
        (**self)
            .admit_send(account, max_failures, limits, now)
            .await
    }

    async fn release_limits(&self, keys: &[LimitKey]) -> Result<(), StoreError> {
        (**self).release_limits(keys).await
    }

    async fn failures(&self, account: AccountId, now: Timestamp) -> Result<u32, StoreError> {
        (**self).failures(account, now).await
    }

    async fn reset_failures(&self, account: AccountId) -> Result<(), StoreError> {
        (**self).reset_failures(account).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        (**self).ping().await
    }

    async fn credit_conversions(
        &self,
        keys: &[(LimitKey, u64)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        (**self).credit_conversions(keys, now).await
    }

    async fn conversion_counts(
        &self,
        key: &LimitKey,
        bucket_millis: u64,
        now: Timestamp,
    ) -> Result<Counts, StoreError> {
        (**self).conversion_counts(key, bucket_millis, now).await
    }

    async fn budget_used(&self, keys: &[LimitKey], now: Timestamp) -> Result<Vec<u64>, StoreError> {
        (**self).budget_used(keys, now).await
    }

    async fn destination(&self, id: &ChallengeId) -> Result<Option<StoredDestination>, StoreError> {
        (**self).destination(id).await
    }

    async fn totp_factor(&self, account: AccountId) -> Result<Option<TotpFactor>, StoreError> {
        (**self).totp_factor(account).await
    }

    async fn totp_secret(&self, account: AccountId) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        (**self).totp_secret(account).await
    }

    async fn put_totp_factor(
        &self,
        account: AccountId,
        factor: TotpFactor,
        when: FactorWrite,
    ) -> Result<bool, StoreError> {
        (**self).put_totp_factor(account, factor, when).await
    }

    async fn remove_totp_factor(&self, account: AccountId) -> Result<(), StoreError> {
        (**self).remove_totp_factor(account).await
    }

    async fn update_totp_factor(
        &self,
        account: AccountId,
        expected_secret: &[u8],
        confirm: bool,
        resealed: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        (**self)
            .update_totp_factor(account, expected_secret, confirm, resealed)
            .await
    }

    async fn accept_totp_step(
        &self,
        account: AccountId,
        step: u64,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        (**self).accept_totp_step(account, step, cap, now).await
    }

    async fn use_recovery_code(
        &self,
        account: AccountId,
        digests: &[[u8; 32]],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        (**self).use_recovery_code(account, digests, cap, now).await
    }

    async fn count_failure(
        &self,
        account: AccountId,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        (**self).count_failure(account, cap, now).await
    }
}
