//! The text2sql web demo and its JSON API.
//!
//! A person picks a database, browses its schema, asks a question and sees
//! the generated SQL, its result, and the beam-search alternatives. The
//! server owns HTTP, bounds and presentation only: it writes SQL through a
//! [`SqlGenerator`] (the model) and executes it through a [`SqlRunner`] (the
//! sandbox), and nothing else.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use text2sql_serve::*;
//! # async fn demo(runner: Arc<dyn SqlRunner>, generator: Arc<dyn SqlGenerator>) -> Result<(), ServeError> {
//! let config = ServeConfig::default();
//! serve(config, runner, generator, shutdown_signal()).await
//! # }
//! ```

mod api;
mod backend;
mod catalog;
mod config;
mod error;
mod explain;
mod model_generator;
mod pool;
mod sandbox_runner;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use api::{router, AppState, ErrorBody};
pub use backend::{
    Candidate, GenerateError, ResultSet, RunError, RunLimits, SqlGenerator, SqlRunner,
};
pub use catalog::{is_valid_db_id, Catalog, Database, SchemaSource, MAX_DB_ID_LEN};
pub use config::ServeConfig;
pub use error::ServeError;
pub use explain::{explain, strip_location, Author, Explanation};
pub use model_generator::ModelGenerator;
pub use pool::{PoolError, WorkerPool};
pub use sandbox_runner::SandboxRunner;

/// A server with its databases loaded and its port bound, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    local_addr: SocketAddr,
}

impl Server {
    /// Loads the databases under `config.databases` and binds `config.addr`
    /// (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(
        config: ServeConfig,
        runner: Arc<dyn SqlRunner>,
        generator: Arc<dyn SqlGenerator>,
    ) -> Result<Self, ServeError> {
        let databases = config.databases.clone();
        let catalog = tokio::task::spawn_blocking(move || Catalog::load(&databases))
            .await
            .map_err(|e| ServeError::Invalid(format!("loading the databases failed: {e}")))??;
        let addr = config.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self {
            listener,
            state: AppState::new(config, catalog, runner, generator),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn catalog(&self) -> &Catalog {
        self.state.catalog()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// requests in flight finish (each is bounded by the request deadline)
    /// and returns.
    pub async fn run<F>(self, shutdown: F) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tracing::info!(
            "serving {} databases on http://{}",
            self.state.catalog().len(),
            self.local_addr
        );
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Server)
    }
}

/// Loads the databases, binds, and serves until `shutdown` completes.
pub async fn serve<F>(
    config: ServeConfig,
    runner: Arc<dyn SqlRunner>,
    generator: Arc<dyn SqlGenerator>,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    Server::bind(config, runner, generator)
        .await?
        .run(shutdown)
        .await
}

/// For a synchronous `main`: builds a runtime, binds, calls `on_ready` once
/// the port is open (to print the address), and serves until SIGTERM or
/// Ctrl-C.
pub fn serve_until_signal(
    config: ServeConfig,
    runner: Arc<dyn SqlRunner>,
    generator: Arc<dyn SqlGenerator>,
    on_ready: impl FnOnce(&Server),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let served = runtime.block_on(async move {
        let server = Server::bind(config, runner, generator).await?;
        on_ready(&server);
        server.run(shutdown_signal()).await
    });
    // A generation abandoned at its deadline may still be running on a
    // blocking thread; give it a moment, then exit without it.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    served
}

/// How long [`serve_until_signal`] waits for abandoned blocking work on exit.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Completes on Ctrl-C or SIGTERM. A signal that cannot be listened for is
/// logged and ignored rather than taken as a request to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {error}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!("cannot listen for SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

#[cfg(test)]
text2sql_sql::sql_worker_entry!();
