//! Reading fields out of a caller's JSON by path, with errors that name the field.
//!
//! Contracts we do not own (Okta's) are read leniently where their own samples disagree
//! (a number or code given as a JSON number) and strictly where a wrong value would send
//! the wrong thing.

use serde_json::{Value, json};

/// A field that is missing or has the wrong type, by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) location: &'static str,
    pub(crate) reason: String,
}

impl FieldError {
    pub(crate) fn new(location: &'static str, reason: impl Into<String>) -> Self {
        Self {
            location,
            reason: reason.into(),
        }
    }

    /// As an Okta-style error cause.
    pub(crate) fn into_json(self, summary: &str) -> Value {
        json!({
            "errorSummary": summary,
            "reason": format!("{}: {}", self.location, self.reason),
            "locationType": "body",
            "location": self.location,
        })
    }
}

/// A JSON document to read fields from.
pub(crate) struct Fields<'a> {
    root: &'a Value,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(root: &'a Value) -> Self {
        Self { root }
    }

    fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('.')
            .try_fold(self.root, |value, key| value.get(key))
            .filter(|value| !value.is_null())
    }

    /// A required string.
    pub(crate) fn string(&self, path: &str) -> Result<String, FieldError> {
        match self.get(path) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(FieldError::new(leak(path), "must be a string")),
            None => Err(FieldError::new(leak(path), "is required")),
        }
    }

    /// An optional string.
    pub(crate) fn optional_string(&self, path: &str) -> Result<Option<String>, FieldError> {
        match self.get(path) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(FieldError::new(leak(path), "must be a string")),
            None => Ok(None),
        }
    }

    /// A required string, or a non-negative integer read as its digits (Okta's spec
    /// example has `phoneNumber: 9876543210` and `otpCode: 11111` as YAML integers).
    pub(crate) fn scalar(&self, path: &str) -> Result<String, FieldError> {
        match self.get(path) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
            Some(_) => Err(FieldError::new(leak(path), "must be a string")),
            None => Err(FieldError::new(leak(path), "is required")),
        }
    }
}

/// Paths are a handful of literals per contract; error values want `&'static str`.
fn leak(path: &str) -> &'static str {
    KNOWN_PATHS
        .iter()
        .find(|known| **known == path)
        .copied()
        .unwrap_or("body")
}

const KNOWN_PATHS: &[&str] = &[
    "eventId",
    "requestType",
    "data.messageProfile.phoneNumber",
    "data.messageProfile.deliveryChannel",
    "data.messageProfile.otpCode",
    "data.messageProfile.otpExpires",
    "data.messageProfile.msgTemplate",
    "data.messageProfile.locale",
    "data.userProfile.userId",
    "data.context.request.ipAddress",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_fields_and_names_the_bad_one() {
        let doc =
            json!({"data": {"messageProfile": {"phoneNumber": 9876543210u64, "otpCode": true}}});
        let fields = Fields::new(&doc);
        assert_eq!(
            fields.scalar("data.messageProfile.phoneNumber"),
            Ok("9876543210".into())
        );
        assert_eq!(
            fields.scalar("data.messageProfile.otpCode"),
            Err(FieldError::new(
                "data.messageProfile.otpCode",
                "must be a string"
            ))
        );
        assert_eq!(
            fields.string("data.messageProfile.deliveryChannel"),
            Err(FieldError::new(
                "data.messageProfile.deliveryChannel",
                "is required"
            ))
        );
        assert_eq!(fields.optional_string("eventId"), Ok(None));
    }
}
