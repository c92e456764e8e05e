//! `exit.json`: the container's exit, written once, atomically (write to a
//! temporary name, then rename), so that a core that was down when the
//! container exited still learns the real exit code.

use std::path::Path;

pub fn write(
    dir: &Path,
    exit_code: i32,
    finished_at: &str,
    oom_killed: bool,
) -> std::io::Result<()> {
    let tmp = dir.join("exit.json.tmp");
    let body = format!("{{\"exit_code\":{exit_code},\"finished_at\":\"{finished_at}\",\"oom_killed\":{oom_killed}}}\n");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join("exit.json"))
}
