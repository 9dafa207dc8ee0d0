//! What every adapter response target checks, given the adapter's two body readers.

use phone_otp::{ProviderError, Receipt};
use reqwest::header::HeaderMap;

/// `data` is two bytes of HTTP status, then the body (read lossily, as a client would).
/// Neither reader may panic, a success body is never kept on an error, and no digit
/// survives in a kept error body.
pub fn check(
    data: &[u8],
    parse: impl Fn(&str) -> Result<Receipt, ProviderError>,
    classify: impl Fn(u16, &HeaderMap, &str) -> ProviderError,
) {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*status);
    let body = &String::from_utf8_lossy(body);
    if let Err(error) = parse(body) {
        assert!(error.body().is_none(), "a success body was kept");
    }
    let error = classify(status, &HeaderMap::new(), body);
    if let Some(kept) = error.body() {
        assert!(
            !kept.chars().any(char::is_numeric),
            "digits survived: {kept}"
        );
    }
    let _ = format!("{error} {error:?}");
}
