//! Reading a JSON request body for the gateway's own contracts, with the statuses a
//! caller can act on: 413 too large, 415 not JSON, 400 not parseable, 422 wrong fields.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// The body as `T`.
pub(crate) fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let value = read_value(headers, body)?;
    serde_json::from_value(value).map_err(|error| {
        // serde names the field and what it expected; the caller sent the value itself.
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            error.to_string(),
        )
    })
}

/// The body as any JSON value, whatever its `Content-Type` claims (for callers whose
/// published samples send none).
pub(crate) fn read_value_of_any_type(
    body: Result<Bytes, BytesRejection>,
) -> Result<serde_json::Value, Problem> {
    parse_value(readable(body)?)
}

fn readable(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(status, "body_too_large", "the request body is too large")
        } else {
            Problem::new(
                status,
                "unreadable_body",
                "the request body could not be read",
            )
        }
    })
}

fn parse_value(body: Bytes) -> Result<serde_json::Value, Problem> {
    serde_json::from_slice(&body).map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body is not valid JSON",
        )
    })
}

/// The body as any JSON value.
pub(crate) fn read_value(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<serde_json::Value, Problem> {
    let body = readable(body)?;
    if !super::is_json(headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ));
    }
    parse_value(body)
}
