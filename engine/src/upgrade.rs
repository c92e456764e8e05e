//! `berthd upgrade`: replaces a running installation by the binaries on
//! disk, berth-core first (`berth-core --takeover`), berthd second
//! (`berthd --takeover`), refusing no request, and says what it did.
//!
//! Each new process is started detached, as its predecessor was, and
//! reports with sd_notify's `READY=1` once it serves; a new process that
//! exits first, or does not report within the timeout (it is killed then),
//! has taken nothing over: the old one keeps serving, and the command
//! fails naming why, with the new process's log. berthd is only replaced
//! after the core was: a new core serves the old berthd's protocol.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

use crate::config::Config;
use crate::core_client::{CoreClient, Launcher};

#[derive(Debug, Parser)]
#[command(
    name = "berthd upgrade",
    about = "Replace the running berth-core and berthd by new binaries, refusing no request",
    after_help = "Give berthd's own flags after the options, as the running berthd was given them \
                  (its configuration file is read too)."
)]
struct Args {
    /// The new berthd [default: this executable]
    #[arg(long)]
    berthd: Option<PathBuf>,
    /// The new berth-core [default: berth-core next to this executable]
    #[arg(long = "berth-core")]
    core: Option<PathBuf>,
    /// Replace berth-core only; the running berthd stays
    #[arg(long)]
    core_only: bool,
    /// Seconds each new process has to take over before it is stopped
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The new berthd's log [default: <exec-root>/berthd.log]
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// berthd's flags
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    flags: Vec<OsString>,
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<()> {
    let args = Args::parse_from(std::iter::once(OsString::from("berthd upgrade")).chain(args));
    let config = match crate::config_file::from_args(
        std::iter::once(OsString::from("berthd")).chain(args.flags.iter().cloned()),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd upgrade: {e}");
            std::process::exit(1);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Err(e) = rt.block_on(run(&args, &config)) {
        eprintln!("berthd upgrade: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: &Args, config: &Config) -> anyhow::Result<()> {
    let this = std::env::current_exe()?;
    let berthd = args.berthd.clone().unwrap_or_else(|| this.clone());
    let core = args
        .core
        .clone()
        .unwrap_or_else(|| this.with_file_name("berth-core"));
    let timeout = Duration::from_secs(args.timeout);
    let client = CoreClient::new(config.core_socket().map_err(anyhow::Error::msg)?, None);
    let old = client.handshake().await.map_err(|e| {
        anyhow::anyhow!(
            "no berth-core answers at {}: {e}",
            client.socket().display()
        )
    })?;

    let mut flags = vec![OsString::from("--takeover")];
    flags.extend(Launcher::args(config)?.into_iter().map(OsString::from));
    let core_log = Launcher::log(config);
    let took = replace(&core, &flags, &core_log, timeout, &config.exec_root)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "berth-core was not replaced: {e}; berth-core {} (pid {}) keeps serving",
                old.core_version,
                old.pid
            )
        })?;
    let new = client.handshake().await?;
    println!(
        "berth-core {} (pid {}) replaced by berth-core {} (pid {}) from {} in {} ms",
        old.core_version,
        old.pid,
        new.core_version,
        new.pid,
        core.display(),
        took.as_millis()
    );
    if args.core_only {
        return Ok(());
    }

    let mut flags = vec![OsString::from("--takeover")];
    flags.extend(args.flags.iter().cloned());
    let log = args
        .log_file
        .clone()
        .unwrap_or_else(|| config.exec_root.join("berthd.log"));
    let took = replace(&berthd, &flags, &log, timeout, &config.exec_root)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "berthd was not replaced: {e}; the running berthd keeps serving (on the new berth-core)"
            )
        })?;
    println!(
        "berthd replaced by {} in {} ms; the old berthd finishes its open requests and exits",
        berthd.display(),
        took.as_millis()
    );
    Ok(())
}

/// Starts `binary` with `flags`, detached, and waits until it reports that
/// it serves; how long that took.
async fn replace(
    binary: &Path,
    flags: &[OsString],
    log: &Path,
    timeout: Duration,
    exec_root: &Path,
) -> anyhow::Result<Duration> {
    let notify_path = exec_root.join(format!("upgrade-{}.notify", std::process::id()));
    let _ = std::fs::remove_file(&notify_path);
    let notify = tokio::net::UnixDatagram::bind(&notify_path)?;
    let _remove = RemoveOnDrop(notify_path.clone());
    let log_start = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .args(flags)
        .env(berth_proto::notify::SOCKET_VAR, &notify_path)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Its own process group, as its predecessor: it outlives us.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
    let pid = child.id().unwrap_or(0);
    let outcome = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 512];
        loop {
            tokio::select! {
                r = notify.recv(&mut buf) => {
                    let n = r?;
                    if berth_proto::notify::ready_pid(&buf[..n]) == Some(pid) {
                        return Ok::<Option<ExitStatus>, std::io::Error>(None);
                    }
                }
                status = child.wait() => return Ok(Some(status?)),
            }
        }
    })
    .await;
    let why = match outcome {
        Ok(Ok(None)) => return Ok(started.elapsed()),
        Ok(Ok(Some(status))) => format!("{} exited ({status}) before serving", binary.display()),
        Ok(Err(e)) => format!("waiting for {}: {e}", binary.display()),
        Err(_) => {
            // Killed, it lets go of what it holds; the old one takes it back.
            let _ = child.start_kill();
            let _ = child.wait().await;
            format!(
                "{} did not serve within {} s and was stopped",
                binary.display(),
                timeout.as_secs()
            )
        }
    };
    let said = log_since(log, log_start);
    Err(anyhow::anyhow!("{why}; its log says:\n{said}"))
}

/// What a log gained since `start` (the last lines of it).
fn log_since(log: &Path, start: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(start as usize..).unwrap_or_default());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
