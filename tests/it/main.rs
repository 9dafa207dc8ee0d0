//! Integration tests through the public API only.

mod codes;
mod limits;
mod phone;
mod redaction;
mod resend;
mod store_contract;
mod support;
mod templates;
mod verify;
