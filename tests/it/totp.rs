//! TOTP codes against RFC 6238's own test vectors, and the key URI read back by a real
//! URL parser.

use std::time::Duration;

use phone_otp::totp::{TotpAlgorithm, TotpSecret, TotpSettings, key_uri};

use crate::support::TestResult;

/// RFC 6238 Appendix B: each time with its SHA-1, SHA-256 and SHA-512 code (8 digits).
const VECTORS: [(u64, &str, &str, &str); 6] = [
    (59, "94287082", "46119246", "90693936"),
    (1_111_111_109, "07081804", "68084774", "25091201"),
    (1_111_111_111, "14050471", "67062674", "99943326"),
    (1_234_567_890, "89005924", "91819424", "93441116"),
    (2_000_000_000, "69279037", "90698825", "38618901"),
    (20_000_000_000, "65353130", "77737706", "47863826"),
];

fn settings(algorithm: TotpAlgorithm) -> TotpSettings {
    TotpSettings {
        algorithm,
        digits: 8,
        ..TotpSettings::new("RFC 6238")
    }
}

#[test]
fn rfc_6238_appendix_b_vectors() {
    // The seeds of the appendix: 20, 32 and 64 bytes of ASCII digits.
    let seed =
        |len: usize| -> Vec<u8> { b"1234567890".iter().copied().cycle().take(len).collect() };
    for (time, sha1, sha256, sha512) in VECTORS {
        for (algorithm, key_len, expected) in [
            (TotpAlgorithm::Sha1, 20, sha1),
            (TotpAlgorithm::Sha256, 32, sha256),
            (TotpAlgorithm::Sha512, 64, sha512),
        ] {
            let settings = settings(algorithm);
            let secret = seed(key_len);
            assert_eq!(
                settings.code_at(&secret, time),
                expected,
                "{algorithm:?} at {time}"
            );
            // And each verifies at its own time, on its own step.
            assert_eq!(
                settings.matching_step(&secret, expected, time),
                Some(time / 30),
                "{algorithm:?} at {time}"
            );
        }
    }
}

#[test]
fn the_key_uri_parses_back_with_every_parameter() -> TestResult {
    let secret = TotpSecret::from_bytes(b"12345678901234567890");
    let settings = TotpSettings {
        algorithm: TotpAlgorithm::Sha256,
        digits: 8,
        period: Duration::from_secs(60),
        ..TotpSettings::new("Example Co")
    };
    let uri = key_uri(&settings, "alice@example.com", &secret);
    let parsed = url::Url::parse(&uri)?;
    assert_eq!(parsed.scheme(), "otpauth");
    assert_eq!(parsed.host_str(), Some("totp"));
    let label = url::form_urlencoded::parse(parsed.path().trim_start_matches('/').as_bytes())
        .map(|(k, _)| k.into_owned())
        .next()
        .unwrap_or_default();
    assert_eq!(label, "Example Co:alice@example.com");
    let query: std::collections::HashMap<String, String> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(query.len(), 5, "{query:?}");
    assert_eq!(query["secret"], "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(query["issuer"], "Example Co");
    assert_eq!(query["algorithm"], "SHA256");
    assert_eq!(query["digits"], "8");
    assert_eq!(query["period"], "60");
    Ok(())
}
