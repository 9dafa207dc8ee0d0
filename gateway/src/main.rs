//! `phone-otp-gateway`: reads a TOML config, sets up logging, serves until SIGTERM or
//! Ctrl-C, then drains in-flight requests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use phone_otp_gateway::config::Config;
use phone_otp_gateway::telemetry;
use tracing::{error, info, warn};

/// Delivers Okta, Auth0 and internal systems' one-time codes through phone-otp.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The TOML config file (see examples/gateway.toml).
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Check the config and the environment it names, then exit.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.config) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.config.display());
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::from_toml(&text) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {}: {e}", args.config.display());
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(config.log_format);
    let built = match config.build(&|name| std::env::var(name).ok()).await {
        Ok(built) => built,
        Err(e) => {
            error!(error = %error_chain(&e), "cannot start");
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
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(address = %config.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    info!(%address, "phone-otp-gateway listening");
    let app = built.gateway.router();
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
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
