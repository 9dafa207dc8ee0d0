//! HTTP tests: the real gateway on 127.0.0.1:0, a real client (reqwest).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod anonymous;
mod audit;
mod auth0;
mod callbacks;
mod challenges;
mod connections;
mod console;
mod console_browser;
mod console_pages;
mod dashboards;
mod db;
mod full_disk;
mod idempotency;
mod jwt;
mod keys;
mod messages;
mod okta;
mod ops;
mod outages;
mod receipts;
mod support;
mod tenancy;
mod totp;
mod usage;
