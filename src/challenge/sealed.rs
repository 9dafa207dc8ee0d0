//! What a shared store keeps of a challenge's number: sealed bytes (see `otp::seal` for
//! how they are made).

use std::fmt;

/// A destination as a store keeps it when it should not hold the number in clear: the id
/// of the key that sealed it, then the ciphertext and tag. `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedDestination(Vec<u8>);

impl SealedDestination {
    /// Rebuilds a sealed destination from the bytes a store kept.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedDestination({} bytes)", self.0.len())
    }
}
