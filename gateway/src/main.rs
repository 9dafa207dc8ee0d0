//! `phone-otp-gateway`: reads a TOML config, sets up logging, serves until SIGTERM or
//! Ctrl-C, then drains in-flight requests. `keys ...` manages API keys in the configured
//! database instead.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use phone_otp_gateway::config::Config;
use phone_otp_gateway::db::UsageQuery;
use phone_otp_gateway::telemetry;
use tracing::{error, info, warn};

/// Delivers Okta, Auth0 and internal systems' one-time codes through phone-otp.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The TOML config file (see examples/gateway.toml).
    #[arg(long, short, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Check the config and the environment it names, then exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Manage API keys and personal tokens in the configured database.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print usage and estimated cost per group from the audit trail (what
    /// `GET /v1/usage` answers).
    Usage {
        /// Start: `2026-11-01` (UTC) or an RFC 3339 time (default: 30 days ago).
        #[arg(long)]
        from: Option<String>,
        /// End: a day (included) or an RFC 3339 time (excluded); default: now.
        #[arg(long)]
        to: Option<String>,
        /// Comma-separated: system, country, provider, day, channel, endpoint, hour, outcome,
        /// refused_by, prefix.
        #[arg(long, default_value = "system")]
        group_by: String,
        /// `csv` or `json`.
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// Print the OpenAPI 3.1 document of `/v1` (what `GET /openapi.json` serves and
    /// `gateway/openapi.json` holds). Needs no configuration.
    Openapi,
    /// Settle audit rows left `pending` by a send that stopped: they become `unknown`
    /// (the provider may have delivered). Without `--all`, only rows older than the
    /// request timeout + 30 s, as the running gateway does by itself.
    Reconcile {
        /// Every pending row, however recent: only once every instance using this
        /// database has stopped (a live one's in-flight sends would be marked too).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Issue a key; its token is printed once and never stored.
    Create {
        /// The calling system (or, with --personal, the person).
        #[arg(long)]
        owner: String,
        /// A scope it may use (repeatable): messages:send, challenges:start,
        /// challenges:verify, hooks:okta, hooks:auth0, usage:read, keys:admin.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// A CIDR block it may be used from (repeatable; none: anywhere).
        #[arg(long = "allow")]
        allowed: Vec<String>,
        /// A personal access token (must expire) instead of a system key.
        #[arg(long)]
        personal: bool,
        /// Lifetime, e.g. 30d or 12h.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key now, on every instance.
    Revoke {
        /// The key id.
        id: String,
    },
    /// Issue a replacement with the same owner, scopes and addresses; the old key works
    /// for the grace period.
    Rotate {
        /// The key id.
        id: String,
        /// How long the old key keeps working, e.g. 1h (default: stops now).
        #[arg(long)]
        grace: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Openapi) = args.command {
        print!("{}", phone_otp_gateway::openapi::document());
        return ExitCode::SUCCESS;
    }
    let Some(path) = &args.config else {
        eprintln!("error: --config FILE is required (see gateway/examples/gateway.toml)");
        return ExitCode::FAILURE;
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::from_toml(&text) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Usage {
        from,
        to,
        group_by,
        format,
    }) = &args.command
    {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("from", from), ("to", to)] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        query.append_pair("group_by", group_by);
        query.append_pair("format", format);
        return match usage(&config, &query.finish()).await {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", error_chain(e.as_ref()));
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Reconcile { all }) = &args.command {
        return match reconcile(&config, *all).await {
            Ok(settled) => {
                println!(
                    "pending audit rows settled: {} confirmed by a receipt, {} unknown",
                    settled.confirmed, settled.unknown
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", error_chain(e.as_ref()));
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Keys(command)) = args.command {
        return match keys::run(&config, command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", error_chain(e.as_ref()));
                ExitCode::FAILURE
            }
        };
    }
    telemetry::init(config.log_format);
    let built = match config.build(&|name| std::env::var(name).ok()).await {
        Ok(built) => built,
        Err(e) => {
            // For the person at the terminal, not a log line.
            eprintln!("error: cannot start: {}", error_chain(&e));
            if matches!(e, phone_otp_gateway::config::ConfigError::MissingEnv(_)) {
                eprintln!(
                    "hint: set them, or try the gateway without any account first: \
                     `--config gateway/examples/try.toml` (see the README)"
                );
            }
            return ExitCode::FAILURE;
        }
    };
    if built.stub_only {
        warn!("NO PROVIDER CONFIGURED: codes go to the stub provider and reach no phone");
    }
    if args.check {
        info!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    // Audit rows a stopped send left `pending` become `unknown`: before serving, then
    // periodically.
    if let Err(e) = built.gateway.reconcile_audit(true).await {
        warn!(error = %e, "pending audit rows not reconciled at startup: retried later");
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    // One descriptor per connection: take what the hard limit allows, and cap
    // connections under it.
    let descriptors = phone_otp_gateway::serve::raise_descriptor_limit();
    let limits = config.server.connection_limits(descriptors);
    info!(
        %address,
        max_connections = limits.max_connections,
        open_file_limit = descriptors.unwrap_or(0),
        "phone-otp-gateway listening"
    );
    let _reconciler = built.gateway.spawn_audit_reconciler();
    #[cfg(feature = "console")]
    if let (Some(address), Some(router)) = (
        config.console.as_ref().and_then(|c| c.listen),
        built.gateway.console_router(),
    ) {
        let listener = match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("error: cannot listen on {address} for the console: {e}");
                return ExitCode::FAILURE;
            }
        };
        info!(%address, "console listening");
        tokio::spawn(async move {
            let served =
                phone_otp_gateway::serve::serve(listener, router, limits, shutdown_signal()).await;
            if let Err(e) = served {
                error!(error = %e, "console server failed");
            }
        });
    }
    let served = phone_otp_gateway::serve::serve(
        listener,
        built.gateway.router(),
        limits,
        shutdown_signal(),
    )
    .await;
    match served {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("shutting down: finishing in-flight requests");
}

/// The usage report for `query` (the `/v1/usage` query string), as CSV or JSON text.
async fn usage(config: &Config, query: &str) -> Result<String, Box<dyn std::error::Error>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let query = UsageQuery::parse(query, now)?;
    let db = config
        .open_database(&|name| std::env::var(name).ok())
        .await?;
    // The host's operator reads every system (or one, with `system=`).
    let report = db
        .usage(
            query.from,
            query.to,
            query.system.as_deref(),
            &query.group_by,
        )
        .await?;
    Ok(if query.csv {
        report.to_csv()
    } else {
        format!("{:#}\n", report.to_json())
    })
}

/// Settles pending audit rows: every one with `all`, else those past the grace.
async fn reconcile(
    config: &Config,
    all: bool,
) -> Result<phone_otp_gateway::db::Settled, Box<dyn std::error::Error>> {
    let db = config
        .open_database(&|name| std::env::var(name).ok())
        .await?;
    let before = if all {
        i64::MAX
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let timeout = std::time::Duration::from_millis(config.server.request_timeout_ms);
        phone_otp_gateway::audit::reconcile::cutoff(now, timeout)
    };
    Ok(db.reconcile_pending(before).await?)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `keys` commands: plain output on stdout, errors on stderr.
mod keys {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use phone_otp_gateway::auth::api_key::KeyKind;
    use phone_otp_gateway::auth::key_admin::{
        KeySpec, check_owner_is_free, create_key, rotate_key,
    };
    use phone_otp_gateway::auth::scope::Scopes;
    use phone_otp_gateway::config::{Config, parse_duration};
    use secrecy::ExposeSecret;

    use super::KeysCommand;

    type Error = Box<dyn std::error::Error>;

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    fn duration(text: &str, what: &str) -> Result<Duration, Error> {
        parse_duration(text)
            .ok_or_else(|| format!("{what}: expected e.g. 30d, 12h or 15m, got {text:?}").into())
    }

    fn time(millis: Option<i64>) -> String {
        millis.map_or_else(
            || "-".to_owned(),
            |ms| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| ms.to_string())
            },
        )
    }

    pub(super) async fn run(config: &Config, command: KeysCommand) -> Result<(), Error> {
        let db = config
            .open_database(&|name| std::env::var(name).ok())
            .await?;
        match command {
            KeysCommand::Create {
                owner,
                scopes,
                allowed,
                personal,
                expires_in,
            } => {
                let scopes = Scopes::parse(&scopes.join(" "))
                    .map_err(|unknown| format!("unknown scope {unknown:?}"))?;
                let allowed = allowed
                    .iter()
                    .map(|block| block.parse())
                    .collect::<Result<Vec<_>, _>>()?;
                let lifetime = expires_in
                    .as_deref()
                    .map(|t| duration(t, "--expires-in"))
                    .transpose()?;
                let kind = if personal {
                    KeyKind::Personal
                } else {
                    KeyKind::System
                };
                let spec = KeySpec {
                    kind,
                    owner,
                    scopes,
                    allowed,
                    lifetime,
                };
                check_owner_is_free(&spec.owner, &config.reserved_systems())?;
                let (token, record) = create_key(&db, &spec, now()).await?;
                println!("id:      {}", record.id);
                println!("owner:   {}", record.owner);
                println!("scopes:  {}", record.scopes);
                println!("expires: {}", time(record.expires_at));
                println!(
                    "token (shown once, store it now): {}",
                    token.expose_secret()
                );
            }
            KeysCommand::List => {
                println!("id\tkind\towner\tscopes\tallowed\tcreated\texpires\trevoked\tlast_used");
                for key in db.keys().await? {
                    let allowed: Vec<String> =
                        key.allowed.iter().map(ToString::to_string).collect();
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        key.id,
                        key.kind.as_str(),
                        key.owner,
                        key.scopes,
                        if allowed.is_empty() {
                            "any".to_owned()
                        } else {
                            allowed.join(",")
                        },
                        time(Some(key.created_at)),
                        time(key.expires_at),
                        time(key.revoked_at),
                        time(key.last_used_at),
                    );
                }
            }
            KeysCommand::Revoke { id } => {
                if !db.revoke_key(&id, now()).await? {
                    return Err(format!("no live key {id:?}").into());
                }
                println!("revoked {id}");
            }
            KeysCommand::Rotate { id, grace } => {
                let grace = grace
                    .as_deref()
                    .map(|t| duration(t, "--grace"))
                    .transpose()?
                    .unwrap_or_default();
                let (token, record) = rotate_key(&db, &id, grace, now()).await?;
                println!("id:      {}", record.id);
                println!(
                    "replaces {id}, which stops working at {}",
                    time(Some(now() + i64::try_from(grace.as_millis()).unwrap_or(0)))
                );
                println!(
                    "token (shown once, store it now): {}",
                    token.expose_secret()
                );
            }
        }
        Ok(())
    }
}
