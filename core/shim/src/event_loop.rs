//! Setting up the container and the poll loop that serves it until it exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_proto::attach::{STDERR, STDOUT};
use berth_runtime::{Cli, CreateOpts, Runtime};
use nix::sys::signalfd::SignalFd;

use crate::attach::{Client, HIGH_WATER};
use crate::log_writer::LogWriter;
use crate::ship::{Form, Retry, Shipper};
use crate::stdio::{self, Streams};
use crate::{reaper, Args};
use berth_proto::shim::{self as contract, files, sockets, Request};
use berth_proto::timefmt;

/// How long to keep draining output after init exited: processes that left
/// the container's pid namespace (or share the host's) may hold the pipes.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// How long a log receiver (syslog, journald) gets, after the container
/// exited, to take the messages still waiting for it, before the exit is
/// reported.
const SHIPPING_AT_EXIT: Duration = Duration::from_secs(2);

/// How long after the exit a lagging log receiver may hold the output
/// still in the pipes (blocking mode) before the exit is reported anyway.
const HELD_AFTER_EXIT: Duration = Duration::from_secs(10);

/// A read of at least this much (but less than the buffer) means a bulk
/// writer: the shim then pauses for [`BULK_PAUSE`] so that its next read
/// takes what piled up in the pipe (1 MiB) instead of waking up for each
/// of the writer's small writes (busybox writes 4 KiB at a time: 120,000
/// wake-ups, each a context switch on both sides, for 500 MB).
const BULK_READ: usize = 4096;
const BULK_PAUSE: Duration = Duration::from_millis(1);

pub struct Shim {
    args: Args,
    runtime: Cli,
    init_pid: i32,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdin_pending: Vec<u8>,
    stdin_close: bool,
    /// The pty master, kept for resize.
    console: Option<OwnedFd>,
    log: LogWriter,
    /// Docker's syslog or journald driver: every line also goes there.
    shipper: Option<Shipper>,
    attach: UnixListener,
    control: UnixListener,
    clients: Vec<Client>,
    sigchld: SignalFd,
    exit_code: Option<i32>,
    exited_at: Option<Instant>,
    /// When a log receiver last held the output after the exit (the drain
    /// clock counts from then).
    held_at: Option<Instant>,
    /// The last read found a bulk writer (see [`BULK_READ`]).
    bulk: bool,
    /// The container's OOM-kill counter (not for execs).
    oom_counter: Option<std::path::PathBuf>,
}

fn runtime_of(args: &Args) -> Cli {
    Cli::new(&args.runtime, &args.runtime_root, args.file("runtime.log"))
}

/// Removes what a failed create may have left in the runtime (an exec's
/// shim never created anything: its container is not its to delete).
pub fn cleanup_failed_create(args: &Args) {
    if !args.exec {
        let _ = runtime_of(args).delete(&args.id);
    }
    stdio::remove_socket(&args.socket(sockets::ATTACH));
    stdio::remove_socket(&args.socket(sockets::CONTROL));
}

/// Creates the container (or, for an exec, runs the process) with its
/// stdio: pipes, or a terminal whose master the runtime passes back over a
/// socket. Returns the streams, the pty master and the process's pid.
fn launch(args: &Args, runtime: &Cli) -> Result<(Streams, Option<OwnedFd>, i32), String> {
    let pid_file = args.file(files::INIT_PID);
    let _ = std::fs::remove_file(&pid_file);
    let run =
        |console_socket: Option<std::path::PathBuf>, stdin: Stdio, stdout: Stdio, stderr: Stdio| {
            let opts = CreateOpts {
                bundle: args.bundle.clone(),
                pid_file: pid_file.clone(),
                console_socket,
            };
            if args.exec {
                runtime.exec_detached_with_stdio(&args.id, &opts, stdin, stdout, stderr)
            } else {
                runtime.create_with_stdio(&args.id, &opts, stdin, stdout, stderr)
            }
        };
    let (streams, console) = if args.tty {
        let sock_path = args.socket(sockets::TTY);
        let listener = listen(&sock_path)?;
        let created = run(
            Some(sock_path.clone()),
            Stdio::null(),
            Stdio::null(),
            Stdio::null(),
        );
        let master = created
            .map_err(|e| e.to_string())
            .and_then(|_| stdio::receive_console(&listener));
        stdio::remove_socket(&sock_path);
        let master = master?;
        let dup = master.try_clone().map_err(|e| e.to_string())?;
        let stdin = if args.stdin {
            Some(master.try_clone().map_err(|e| e.to_string())?)
        } else {
            None
        };
        (
            Streams {
                out: Some(dup),
                err: None,
                stdin,
            },
            Some(master),
        )
    } else {
        let (streams, child) = stdio::pipes(args.stdin)?;
        let stdin = child.stdin.map(Stdio::from).unwrap_or_else(Stdio::null);
        run(
            None,
            stdin,
            Stdio::from(child.stdout),
            Stdio::from(child.stderr),
        )
        .map_err(|e| e.to_string())?;
        (streams, None)
    };
    let init_pid: i32 = std::fs::read_to_string(&pid_file)
        .map_err(|e| format!("read init pid: {e}"))?
        .trim()
        .parse()
        .map_err(|_| "bad init pid file".to_string())?;
    for fd in [
        streams.out.as_ref(),
        streams.err.as_ref(),
        streams.stdin.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        stdio::set_nonblocking(fd.as_raw_fd());
    }
    Ok((streams, console, init_pid))
}

impl Shim {
    /// Everything up to a created (not started) container.
    pub fn setup(args: &Args) -> Result<Shim, String> {
        reaper::become_subreaper()?;
        let sigchld = reaper::sigchld_fd()?;
        std::fs::write(args.file(files::SHIM_PID), std::process::id().to_string())
            .map_err(|e| format!("shim.pid: {e}"))?;
        let log = LogWriter::open(
            &args.log_path,
            args.log_max_size,
            args.log_max_files,
            args.log_format,
        )
        .map_err(|e| format!("open log {}: {e}", args.log_path.display()))?;
        let shipper = shipper_of(args)?;
        if let Some(dir) = args.socket_base.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("socket directory: {e}"))?;
        }
        let attach = listen(&args.socket(sockets::ATTACH))?;
        let control = listen(&args.socket(sockets::CONTROL))?;
        let runtime = runtime_of(args);
        // An exec's process starts on the start request, once attach
        // clients are connected; a container is created now.
        let (streams, console, init_pid) = if args.exec {
            (Streams::default(), None, 0)
        } else {
            launch(args, &runtime)?
        };
        Ok(Shim {
            args: args.clone(),
            runtime,
            init_pid,
            out: streams.out,
            err: streams.err,
            stdin: streams.stdin,
            stdin_pending: Vec::new(),
            stdin_close: false,
            console,
            log,
            shipper,
            attach,
            control,
            clients: Vec::new(),
            sigchld,
            exit_code: None,
            exited_at: None,
            held_at: None,
            bulk: false,
            oom_counter: if args.exec {
                None
            } else {
                crate::oom::counter_file(init_pid)
            },
        })
    }

    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }

    /// The poll loop; returns once the container exited and was cleaned up.
    pub fn run(&mut self) {
        // Pages are only touched when a read fills them.
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            self.note_hold();
            if self.finished() {
                break;
            }
            let backpressure = self.clients.iter().any(|c| c.out.len() > HIGH_WATER)
                || self.shipper.as_ref().is_some_and(Shipper::holds_output);
            // Build the poll set: (fd, events, what).
            let mut set: Vec<(RawFd, i16, Slot)> = Vec::with_capacity(8 + self.clients.len());
            set.push((self.sigchld.as_fd().as_raw_fd(), libc::POLLIN, Slot::Signal));
            set.push((self.attach.as_raw_fd(), libc::POLLIN, Slot::AttachListener));
            set.push((
                self.control.as_raw_fd(),
                libc::POLLIN,
                Slot::ControlListener,
            ));
            if !backpressure {
                if let Some(fd) = &self.out {
                    set.push((fd.as_raw_fd(), libc::POLLIN, Slot::Out));
                }
                if let Some(fd) = &self.err {
                    set.push((fd.as_raw_fd(), libc::POLLIN, Slot::Err));
                }
            }
            if let Some((fd, events)) = self.shipper.as_ref().and_then(Shipper::waiting) {
                set.push((fd, events, Slot::Shipper));
            }
            if let (Some(fd), false) = (&self.stdin, self.stdin_pending.is_empty()) {
                set.push((fd.as_raw_fd(), libc::POLLOUT, Slot::Stdin));
            }
            for (i, c) in self.clients.iter().enumerate() {
                let mut ev = 0;
                if !c.read_closed && self.stdin_pending.len() < HIGH_WATER {
                    ev |= libc::POLLIN;
                }
                if !c.out.is_empty() {
                    ev |= libc::POLLOUT;
                }
                set.push((c.conn.as_raw_fd(), ev, Slot::Client(i)));
            }
            let mut fds: Vec<libc::pollfd> = set
                .iter()
                .map(|&(fd, events, _)| libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                })
                .collect();
            let mut timeout = if self.exited_at.is_some() { 100 } else { -1 };
            if let Some(wait) = self.shipper.as_ref().and_then(Shipper::wake_in) {
                // A retry's wait, rounded up so that it is over on waking.
                let ms = wait.as_millis().min(60_000) as i32 + 1;
                timeout = if timeout < 0 { ms } else { timeout.min(ms) };
            }
            let ready = poll(&mut fds, timeout);
            if let Some(shipper) = &mut self.shipper {
                shipper.on_timer();
            }
            if ready <= 0 {
                continue;
            }
            for (pfd, &(_, _, slot)) in fds.iter().zip(set.iter()) {
                if pfd.revents == 0 {
                    continue;
                }
                match slot {
                    Slot::Signal => self.on_sigchld(),
                    Slot::AttachListener => self.on_attach(),
                    Slot::ControlListener => self.on_control(),
                    Slot::Out => self.on_output(STDOUT, &mut buf),
                    Slot::Err => self.on_output(STDERR, &mut buf),
                    Slot::Stdin => self.flush_stdin(),
                    Slot::Shipper => {
                        if let Some(shipper) = &mut self.shipper {
                            shipper.drain();
                        }
                    }
                    Slot::Client(i) => self.on_client(i, pfd.revents, &mut buf),
                }
            }
            self.clients.retain(|c| !c.broken);
            if std::mem::take(&mut self.bulk) {
                std::thread::sleep(BULK_PAUSE);
            }
            if self.stdin_close && self.stdin_pending.is_empty() && self.console.is_none() {
                self.stdin = None;
            }
        }
        self.shutdown();
    }

    /// After the exit, while a lagging log receiver holds the output
    /// (blocking mode), what is left in the pipes waits for it, and the
    /// drain clock starts again once it took what waits: the last moment
    /// it held is noted here.
    fn note_hold(&mut self) {
        if self.exited_at.is_some() && self.holding_after_exit() {
            self.held_at = Some(Instant::now());
        }
    }

    /// A lagging receiver holds the output, and not for too long since the
    /// exit: dockerd reports an exit whatever its log copier is stuck on,
    /// and so must `docker stop` and `docker wait` here.
    fn holding_after_exit(&self) -> bool {
        self.exited_at
            .is_some_and(|exited| exited.elapsed() < HELD_AFTER_EXIT)
            && self.shipper.as_ref().is_some_and(Shipper::holds_output)
    }

    fn finished(&self) -> bool {
        let Some(exited) = self.exited_at else {
            return false;
        };
        if self.out.is_none() && self.err.is_none() {
            return true;
        }
        if self.holding_after_exit() {
            return false;
        }
        self.held_at.unwrap_or(exited).elapsed() > DRAIN_AFTER_EXIT
    }

    fn on_sigchld(&mut self) {
        while let Ok(Some(_)) = self.sigchld.read_signal() {}
        if let Some(code) = reaper::reap(self.init_pid) {
            self.exit_code = Some(code);
            self.exited_at = Some(Instant::now());
        }
    }

    fn on_output(&mut self, stream: u8, buf: &mut [u8]) {
        let slot = if stream == STDERR {
            &mut self.err
        } else {
            &mut self.out
        };
        let Some(fd) = slot else { return };
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Ok(0) => {
                *slot = None;
                self.flush_stream_logs(stream);
            }
            Ok(n) => {
                self.bulk |= n >= BULK_READ && n < buf.len();
                let data = &buf[..n];
                self.log.write(stream, data);
                if let Some(shipper) = &mut self.shipper {
                    shipper.write(stream, data);
                }
                for c in &mut self.clients {
                    c.queue(stream, data);
                }
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            // EIO: the terminal's other side is gone.
            Err(_) => {
                *slot = None;
                self.flush_stream_logs(stream);
            }
        }
    }

    /// Writes out the unfinished line of a stream that closed.
    fn flush_stream_logs(&mut self, stream: u8) {
        self.log.flush_stream(stream);
        if let Some(shipper) = &mut self.shipper {
            shipper.flush_stream(stream);
        }
    }

    /// Writes out unfinished lines: the process exited.
    fn flush_logs(&mut self) {
        self.log.flush();
        if let Some(shipper) = &mut self.shipper {
            shipper.flush();
        }
    }

    fn on_attach(&mut self) {
        if let Ok((conn, _)) = self.attach.accept() {
            if let Some(mut client) = Client::accept(conn) {
                if !client.req.stdin || (self.stdin.is_none() && !self.exec_waiting_for_stdin()) {
                    client.req.stdin = false;
                }
                self.clients.push(client);
            }
        }
    }

    fn on_client(&mut self, i: usize, revents: i16, buf: &mut [u8]) {
        let stdin_open =
            (self.stdin.is_some() || self.exec_waiting_for_stdin()) && !self.stdin_close;
        let once = self.args.stdin_once;
        let tty = self.args.tty;
        let c = &mut self.clients[i];
        if revents & libc::POLLOUT != 0 {
            c.flush();
        }
        // Hung up after its input ended: gone for good (poll would report
        // the hang-up on every round otherwise, and the loop would spin).
        if revents & (libc::POLLHUP | libc::POLLERR) != 0 && c.read_closed {
            c.broken = true;
            return;
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 && !c.read_closed {
            match (&c.conn).read(buf) {
                Ok(0) => {
                    c.read_closed = true;
                    // StdinOnce closes the container's stdin when the
                    // client's input ends, except on a terminal (Docker's
                    // rule): a client that detached can attach again.
                    if c.req.stdin && once && !tty {
                        self.stdin_close = true;
                    }
                }
                Ok(n) => {
                    if c.req.stdin && stdin_open {
                        self.stdin_pending.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => c.broken = true,
            }
            if !self.stdin_pending.is_empty() {
                self.flush_stdin();
            }
        }
    }

    /// An exec with stdin that has not started yet: input is kept for it.
    fn exec_waiting_for_stdin(&self) -> bool {
        self.args.exec && self.args.stdin && self.init_pid == 0 && self.exit_code.is_none()
    }

    fn flush_stdin(&mut self) {
        if self.exec_waiting_for_stdin() {
            return;
        }
        let Some(fd) = self.stdin.as_ref().map(|f| f.as_raw_fd()) else {
            self.stdin_pending.clear();
            return;
        };
        while !self.stdin_pending.is_empty() {
            match nix::unistd::write(borrow(fd), &self.stdin_pending) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    // The container closed its stdin; drop what it will never read.
                    self.stdin_pending.clear();
                    self.stdin = None;
                }
            }
        }
    }

    fn on_control(&mut self) {
        let Ok((conn, _)) = self.control.accept() else {
            return;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        if BufReader::new(&conn).read_line(&mut line).is_err() {
            return;
        }
        let answer = Request::parse(line.trim()).and_then(|req| self.handle(req));
        let reply = format!("{}\n", contract::answer(&answer));
        let _ = (&conn).write_all(reply.as_bytes());
    }

    fn handle(&mut self, req: Request) -> Result<(), String> {
        match req {
            Request::Start if self.args.exec => self.start_exec(),
            Request::Start => self.runtime.start(&self.args.id).map_err(|e| e.to_string()),
            Request::Kill { signal, all } => {
                if self.exit_code.is_some() {
                    return Err("container is not running".into());
                }
                if self.args.exec {
                    return self.kill_exec(signal);
                }
                self.runtime
                    .kill(&self.args.id, signal, all)
                    .map_err(|e| e.to_string())
            }
            Request::Resize { rows, cols } => match &self.console {
                Some(fd) => stdio::resize(fd.as_raw_fd(), rows, cols),
                None => Err("the container has no terminal".into()),
            },
            Request::CloseStdin => {
                self.stdin_close = true;
                Ok(())
            }
        }
    }

    /// Runs the exec's process now that its clients are attached.
    fn start_exec(&mut self) -> Result<(), String> {
        if self.init_pid != 0 {
            return Err("already started".into());
        }
        match launch(&self.args, &self.runtime) {
            Ok((streams, console, pid)) => {
                self.out = streams.out;
                self.err = streams.err;
                self.stdin = streams.stdin;
                self.console = console;
                self.init_pid = pid;
                let _ = std::fs::write(self.args.file(files::INIT_PID), pid.to_string());
                self.flush_stdin();
                Ok(())
            }
            Err(e) => {
                // Nothing ran: end as a process that could not be started.
                self.exit_code = Some(126);
                self.exited_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Signals an exec's process (the runtime's kill only knows containers);
    /// before it started there is nothing to signal and the shim just ends.
    fn kill_exec(&mut self, signal: i32) -> Result<(), String> {
        if self.init_pid == 0 {
            self.exit_code = Some(128 + signal);
            self.exited_at = Some(Instant::now());
            return Ok(());
        }
        let sig = nix::sys::signal::Signal::try_from(signal).map_err(|e| e.to_string())?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.init_pid), sig)
            .map_err(|e| e.to_string())
    }

    /// After init exited: tell the world and leave. The runtime's record of
    /// the stopped container stays until the core deletes the task, which
    /// keeps `<runtime> delete` (about 10 ms) out of the path from exit to
    /// the exit event.
    fn shutdown(&mut self) {
        self.flush_logs();
        if let Some(shipper) = &mut self.shipper {
            shipper.finish(Instant::now() + SHIPPING_AT_EXIT);
        }
        let finished_at = timefmt::now();
        stdio::remove_socket(&self.args.socket(sockets::ATTACH));
        stdio::remove_socket(&self.args.socket(sockets::CONTROL));
        let code = self.exit_code.unwrap_or(255);
        let oom = self
            .oom_counter
            .as_deref()
            .is_some_and(|f| crate::oom::kills(f) > 0);
        let exit = contract::Exit {
            exit_code: code,
            finished_at,
            oom_killed: oom,
        };
        if let Err(e) = exit.write(&self.args.state_dir) {
            eprintln!("berth-shim: writing exit file: {e}");
        }
        for c in self.clients.drain(..) {
            c.finish();
        }
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Signal,
    AttachListener,
    ControlListener,
    Out,
    Err,
    Stdin,
    Shipper,
    Client(usize),
}

/// Connects to the log receiver the driver names, if any: one that cannot
/// be reached fails the start, as on dockerd.
fn shipper_of(args: &Args) -> Result<Option<Shipper>, String> {
    if let Some(s) = &args.syslog {
        let form = Form::Syslog(crate::syslog::Form::new(s));
        return Shipper::connect(form, &s.address, s.max_buffer, false).map(Some);
    }
    if let Some(j) = &args.journald {
        let form = Form::Journald(crate::journald::Form::new(j));
        let address = format!("unixgram://{}", j.socket);
        return Shipper::connect(form, &address, j.max_buffer, false).map(Some);
    }
    if let Some(f) = &args.fluentd {
        let retry = Retry {
            dials: f.max_retries,
            wait: Duration::from_millis(f.retry_wait_ms),
            grows: true,
        };
        let form = Form::Fluentd(crate::fluentd::Form::new(f), retry);
        return Shipper::connect(form, &f.address, f.max_buffer, f.lazy).map(Some);
    }
    if let Some(g) = &args.gelf {
        // go-gelf's TCP writer dials again after a failed write; a UDP
        // send fails only locally.
        let retry = if g.address.starts_with("tcp://") {
            Retry {
                dials: u64::from(g.max_reconnect),
                wait: Duration::from_secs(u64::from(g.reconnect_delay_s)),
                grows: false,
            }
        } else {
            Retry {
                dials: 0,
                wait: Duration::ZERO,
                grows: false,
            }
        };
        let form = Form::Gelf(crate::gelf::Form::new(g), retry);
        return Shipper::connect(form, &g.address, g.max_buffer, false).map(Some);
    }
    Ok(None)
}

fn listen(path: &std::path::Path) -> Result<UnixListener, String> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(|e| format!("listen on {}: {e}", path.display()))
}

#[allow(unsafe_code)]
fn borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for a single write on a descriptor owned by the shim
    // that stays open for the duration of that call.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

#[allow(unsafe_code)]
fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> i32 {
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd for the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }
}
