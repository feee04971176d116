//! The `fulcrum` command: parse arguments, set up logging, hand off to the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use fulcrum_core::config::{self, Config};

/// mimalloc: same requests per CPU-second as glibc's malloc here, and about 0.3 KB
/// less per idle connection, mostly from cheaper 128-byte-aligned task allocations
/// (A/B in the README's performance section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The embedded default config: the demo.
const DEMO: &str = include_str!("../../../config/demo.toml");

/// The manual page's description: what an operator looks up in it.
const LONG_ABOUT: &str = "A reverse proxy and load balancer: HTTP/1.1 and HTTP/2 (TLS \
terminated or passed through by SNI), TCP and UDP, in front of pools of backends, with \
health checks, retries, sticky sessions and consistent hashing.

Signals: SIGTERM and SIGINT stop accepting and let requests in flight finish up to \
shutdown_timeout. SIGHUP reloads the config file (a config that fails keeps the old one \
serving). SIGUSR1 reopens the access log file (logrotate). SIGUSR2 starts the binary again \
and hands it the listening sockets (zero-downtime upgrade; see `fulcrum upgrade`).

Under systemd (Type=notify), READY=1, RELOADING=1 and STOPPING=1 are sent on \
NOTIFY_SOCKET, and MAINPID= by the process an upgrade started.

Files: /etc/fulcrum/fulcrum.toml (the packaged config); every key is described in \
/usr/share/doc/fulcrum/reference.toml. Logs go to stderr (RUST_LOG=debug for more), the \
access log to the config's [access_log] path. Metrics, the API and a dashboard are on the \
[admin] address.";

#[derive(Parser)]
#[command(
    name = "fulcrum",
    version = fulcrum::LONG_VERSION,
    about = "A reverse proxy and load balancer",
    long_about = LONG_ABOUT
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a config file; without --config, the embedded demo.
    Run {
        /// The config file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file as `run` would load it (keys, then the certificate, key
    /// and CA files it names and its backend names): exit 0, or print every error as
    /// FILE:LINE: KEY: REASON (a file or name as FILE: KEY: REASON) and exit 1.
    Check {
        /// Check the keys and values only: read no file the config names, resolve
        /// no name (for a config written for another machine).
        #[arg(long)]
        keys_only: bool,
        /// The config file.
        file: PathBuf,
    },
    /// Three built-in demo backends with Fulcrum in front of them on 127.0.0.1:8080.
    Demo,
    /// Replace a running Fulcrum with this binary without refusing a connection:
    /// sends it SIGUSR2; it starts the binary it was started from (as now on disk)
    /// and hands over its listening sockets.
    Upgrade {
        /// The running process.
        #[arg(long)]
        pid: i32,
    },
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell), for /usr/share/bash-completion/completions and the like.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, fulcrum(1), in roff (`fulcrum manpage | man -l -`).
    Manpage,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Check { file, keys_only } => check(&file, keys_only),
        Command::Run { config: Some(path) } => exit(serve_file(&path)),
        Command::Run { config: None } | Command::Demo => exit(demo()),
        Command::Upgrade { pid } => exit(
            fulcrum::handover::signal(pid).with_context(|| format!("cannot signal process {pid}")),
        ),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "fulcrum",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Manpage => exit(
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .context("writing the manual page"),
        ),
    }
}

fn exit(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fulcrum: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &Path, keys_only: bool) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match config::parse(file, &text) {
        Ok(c) => {
            let backends: usize = c.pools.values().map(|p| p.backends.len()).sum();
            let summary = format!(
                "{}: ok: {} listeners, {} routes, {} pools, {} backends",
                file.display(),
                c.listeners.len(),
                c.routes.len(),
                c.pools.len(),
                backends
            );
            if !keys_only {
                if let Err(e) = fulcrum::reload::build_only(c) {
                    println!("{}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            }
            println!("{summary}{}", if keys_only { " (keys only)" } else { "" });
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn serve_file(path: &Path) -> anyhow::Result<()> {
    let config = fulcrum::reload::load(path)?;
    fulcrum::run(config, Some(path.to_owned()))?;
    Ok(())
}

fn demo() -> anyhow::Result<()> {
    let config: Config =
        config::parse(Path::new("config/demo.toml (embedded)"), DEMO).map_err(|errors| {
            anyhow::anyhow!(errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"))
        })?;
    let backends: Vec<std::net::SocketAddr> = config
        .pools
        .values()
        .flat_map(|p| p.backends.iter())
        .filter_map(|b| b.address.parse().ok())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    fulcrum::demo::start(&backends).context("starting the demo backends")?;
    let addr = config
        .listeners
        .values()
        .next()
        .map(|l| l.address.clone())
        .unwrap_or_default();
    let admin = config
        .admin
        .as_ref()
        .map(|a| a.address.clone())
        .unwrap_or_default();
    eprintln!(
        "\nFulcrum demo: three backends ({}) behind http://{addr}\n\n  \
         curl http://{addr}/                       # round robin: run it a few times\n  \
         curl http://{addr}/weighted/              # smooth weighted round robin, weights 3:1:1\n  \
         curl --http2-prior-knowledge http://{addr}/   # HTTP/2 (h2c) on the same port\n  \
         curl -d 'hello' http://{addr}/echo        # a request body passes through\n\n  \
         dashboard: http://{admin}/   metrics: http://{admin}/metrics   API: http://{admin}/api/pools\n\n\
         Stop with Ctrl-C.\n",
        backends
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    fulcrum::run(config, None)?;
    Ok(())
}
