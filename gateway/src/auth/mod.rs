//! Caller authentication. For now one shared secret per hook, compared in constant time.

mod shared_secret;

pub(crate) use shared_secret::SharedSecret;
