//! Sealed destinations: what a shared store keeps of a challenge's number.
//!
//! A resend must know where the codes go, so a store keeps the number; a store shared
//! over the network (Redis) keeps it sealed, so a dump of it reveals no phone numbers.
//! XChaCha20-Poly1305 under a key derived from the HMAC key (one-way, with its own
//! domain), a nonce taken from the challenge id (unique: its store key is random), and
//! the whole id as associated data, so a sealed number opens only for its own challenge.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::challenge::{ChallengeId, KeyId, SealedDestination};
use crate::phone::PhoneNumber;

/// The sealing half of one ring key.
#[derive(Clone)]
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    /// `key` is 32 bytes derived one way from the HMAC key.
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    fn nonce(challenge: &ChallengeId) -> XNonce {
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&challenge.as_bytes()[..24]);
        XNonce::from(nonce)
    }

    pub(crate) fn seal(
        &self,
        key_id: KeyId,
        challenge: &ChallengeId,
        to: &PhoneNumber,
    ) -> Option<SealedDestination> {
        let payload = Payload {
            msg: to.e164().as_bytes(),
            aad: challenge.as_bytes(),
        };
        let sealed = self.cipher.encrypt(&Self::nonce(challenge), payload).ok()?;
        let mut bytes = Vec::with_capacity(1 + sealed.len());
        bytes.push(key_id.0);
        bytes.extend_from_slice(&sealed);
        Some(SealedDestination::from_bytes(bytes))
    }

    /// The number, if `sealed` was sealed for `challenge` under this key and is intact.
    pub(crate) fn open(
        &self,
        challenge: &ChallengeId,
        sealed: &SealedDestination,
    ) -> Option<PhoneNumber> {
        let payload = Payload {
            msg: sealed.as_bytes().get(1..)?,
            aad: challenge.as_bytes(),
        };
        let opened = self.cipher.decrypt(&Self::nonce(challenge), payload).ok()?;
        PhoneNumber::parse(std::str::from_utf8(&opened).ok()?).ok()
    }
}

/// The id of the key that sealed `sealed`.
pub(crate) fn sealing_key(sealed: &SealedDestination) -> Option<KeyId> {
    sealed.as_bytes().first().copied().map(KeyId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Purpose;

    fn id(byte: u8) -> ChallengeId {
        ChallengeId::new(
            [byte; 16],
            Purpose::SignIn,
            [1; 8],
            crate::challenge::AccountId([2; 8]),
        )
    }

    #[test]
    fn a_sealed_number_opens_only_for_its_challenge_and_key_and_intact() {
        let to = PhoneNumber::parse("+819012345678").unwrap_or_else(|_| unreachable!());
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal(KeyId(1), &id(1), &to);
        let Some(sealed) = sealed else {
            unreachable!("sealing cannot fail")
        };
        assert!(!String::from_utf8_lossy(sealed.as_bytes()).contains("9012345678"));
        assert_eq!(sealer.open(&id(1), &sealed), Some(to));
        assert_eq!(sealer.open(&id(2), &sealed), None, "another challenge");
        assert_eq!(
            Sealer::new(&[8; 32]).open(&id(1), &sealed),
            None,
            "another key"
        );
        let mut tampered = sealed.as_bytes().to_vec();
        tampered[5] ^= 1;
        assert_eq!(
            sealer.open(&id(1), &SealedDestination::from_bytes(tampered)),
            None
        );
        assert_eq!(
            format!("{sealed:?}"),
            format!("SealedDestination({} bytes)", sealed.as_bytes().len())
        );
    }
}
