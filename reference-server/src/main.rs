//! `reference-server`: runs roomrig's bundled reference server until Ctrl-C or SIGTERM.

use clap::Parser;
use reference_server::ServeArgs;

/// Reference implementation of roomrig's room dialects (Socket.IO, Engine.IO v3 and v4).
#[derive(Debug, Parser)]
#[command(name = "reference-server", version)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    reference_server::serve_cli(Cli::parse().serve).await
}
