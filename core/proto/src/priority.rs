//! A successor's start-up at a lower CPU priority. During an upgrade the
//! new berth-core and berthd prepare (probe the runtimes, read the task
//! records, load the container view) while the old ones still serve; on a
//! small host they compete for the same cores, and the requests being
//! served wait. Preparing at niceness +10 leaves the CPU to the processes
//! serving; the successor takes its own priority back just before it takes
//! over, when its own speed is what requests wait for.
//!
//! Linux keeps a niceness per thread, so the lowering happens before any
//! other thread exists (threads inherit it) and the restoring goes over
//! every thread of the process.

#![allow(unsafe_code)]

/// How much lower a preparing successor runs.
const LOWER_BY: i32 = 10;

/// The priority the process had before [`Background::enter`].
#[derive(Debug)]
pub struct Background {
    original: i32,
}

fn nice_of(tid: u32) -> Option<i32> {
    // getpriority can return -1 as a value: errno tells the two apart.
    // SAFETY: plain integer arguments; errno is this thread's.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, tid);
        (*libc::__errno_location() == 0).then_some(n)
    }
}

fn set_nice(tid: u32, nice: i32) -> bool {
    // SAFETY: plain integer arguments.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) == 0 }
}

impl Background {
    /// Lowers this thread's priority; call before starting other threads.
    pub fn enter() -> Option<Background> {
        let original = nice_of(0)?;
        set_nice(0, (original + LOWER_BY).min(19)).then_some(Background { original })
    }

    /// Gives every thread of the process its original priority back.
    /// Raising a priority needs CAP_SYS_NICE (root has it); without it the
    /// threads stay lower, and this says so.
    pub fn leave(self) -> Result<(), String> {
        let tasks = std::fs::read_dir("/proc/self/task").map_err(|e| e.to_string())?;
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            if !set_nice(tid, self.original) {
                return Err(format!(
                    "restoring the priority of thread {tid}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    }
}

/// The process's lowered priority, while it prepares.
static PREPARING: std::sync::Mutex<Option<Background>> = std::sync::Mutex::new(None);

fn preparing() -> std::sync::MutexGuard<'static, Option<Background>> {
    PREPARING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lowers the process's priority until [`take_back`]; call before any
/// other thread starts.
pub fn lower_while_preparing() {
    *preparing() = Background::enter();
}

/// Gives the process its priority back (nothing if it was not lowered);
/// an error says why it stays lower.
pub fn take_back() -> Result<(), String> {
    match preparing().take() {
        Some(bg) => bg.leave(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_started_while_lowered_are_restored() {
        // In a thread of its own: the test harness's threads keep theirs.
        std::thread::spawn(|| {
            let before = nice_of(0).unwrap();
            let bg = Background::enter().expect("lowering is always allowed");
            assert_eq!(nice_of(0), Some((before + LOWER_BY).min(19)));
            let (tx, rx) = std::sync::mpsc::channel();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let child = std::thread::spawn(move || {
                tx.send(nice_of(0).unwrap()).unwrap();
                done_rx.recv().unwrap();
                nice_of(0).unwrap()
            });
            assert_eq!(rx.recv().unwrap(), (before + LOWER_BY).min(19));
            let restored = bg.leave();
            done_tx.send(()).unwrap();
            let child_after = child.join().unwrap();
            // Raising needs CAP_SYS_NICE: as root (the suite's case) every
            // thread is back; otherwise leave() must have said it failed.
            match restored {
                Ok(()) => {
                    assert_eq!(nice_of(0), Some(before));
                    assert_eq!(child_after, before);
                }
                Err(e) => assert!(e.contains("restoring the priority"), "{e}"),
            }
        })
        .join()
        .unwrap();
    }
}
