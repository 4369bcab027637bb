//! `sse-gateway`: the native gateway binary. Configuration from the environment (see
//! docs/configuration.md); an invalid one exits with status 2 and says why.

use std::process::ExitCode;

use sse_gateway_server::{log, Gateway, ServerConfig};

fn main() -> ExitCode {
    log::init();
    let cfg = match ServerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sse-gateway: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.core.api_keys.is_empty() {
        eprintln!("sse-gateway: invalid configuration: API_KEYS and SCOPED_API_KEYS are empty; set at least one key (comma-separated) for publishers and the admin API");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sse-gateway: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sse-gateway: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cfg: ServerConfig) -> Result<(), Box<dyn std::error::Error>> {
    let listener =
        tokio::net::TcpListener::bind(cfg.listen_addr).await.map_err(|e| format!("cannot listen on {}: {e}", cfg.listen_addr))?;
    let mode = if cfg.cluster.is_some() { "cluster (redis)" } else { "single node (in-memory)" };
    let (node, listen, advertise) = (cfg.node_id.clone(), cfg.listen_addr, cfg.advertise_addr.clone());
    let gateway = Gateway::new(cfg).await?;
    tracing::info!(node = %node, listen = %listen, advertise = %advertise, mode, "sse-gateway listening");
    gateway.serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
