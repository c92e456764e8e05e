//! fsutil's file transfer over a session (`DiffCopy`), both ways: the
//! engine *receives* the build context and the Dockerfile from the
//! caller's FileSync service, and *sends* a result's files to the caller's
//! FileSend service for `--output type=local`.
//!
//! The protocol: the sender streams one STAT packet per entry, in walk
//! order (lexical within a directory, a directory before its contents),
//! then an empty STAT. The receiver asks for the contents of regular files
//! by the index of their STAT (REQ); the sender answers with DATA packets
//! for that index and an empty DATA at its end. The receiver ends with
//! FIN, which the sender echoes. Modes are Go's `os.FileMode` bits.
//!
//! Written here because no Rust crate speaks fsutil's wire protocol; the
//! packets themselves are the generated protobuf types.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use bollard_buildkit_proto::fsutil::types::{packet::PacketType, Packet, Stat};
use bollard_buildkit_proto::moby::filesync::packet::file_send_client::FileSendClient;
use bollard_buildkit_proto::moby::filesync::packet::file_sync_client::FileSyncClient;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::session::{origin, Session};
use crate::confined::{fd_path, Confined};
use crate::error::{Error, Result};

/// Go's `os.FileMode` type bits, as fsutil puts them on the wire.
mod go_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
    pub const IRREGULAR: u32 = 1 << 19;
    /// Every type bit: a mode without any is a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | IRREGULAR;
}

/// Unix permission and special bits of a Go mode.
fn unix_perm(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    if mode & go_mode::SETUID != 0 {
        m |= 0o4000;
    }
    if mode & go_mode::SETGID != 0 {
        m |= 0o2000;
    }
    if mode & go_mode::STICKY != 0 {
        m |= 0o1000;
    }
    m
}

/// A Go mode from a unix `st_mode`.
fn go_mode_of(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    if st_mode & 0o4000 != 0 {
        m |= go_mode::SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= go_mode::SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= go_mode::STICKY;
    }
    m | match st_mode & libc::S_IFMT {
        libc::S_IFDIR => go_mode::DIR,
        libc::S_IFLNK => go_mode::SYMLINK,
        libc::S_IFIFO => go_mode::NAMED_PIPE,
        libc::S_IFSOCK => go_mode::SOCKET,
        libc::S_IFBLK => go_mode::DEVICE,
        libc::S_IFCHR => go_mode::DEVICE | go_mode::CHAR_DEVICE,
        _ => 0,
    }
}

fn is_regular(mode: u32) -> bool {
    mode & go_mode::TYPE == 0
}

/// What to fetch of one of the caller's directories.
#[derive(Default, Clone)]
pub struct Fetch {
    /// The session's name for the directory: `context`, `dockerfile`, or a
    /// named context.
    pub dir_name: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub follow: Vec<String>,
}

/// gRPC metadata values are ASCII: others are query-escaped, and the key
/// gets a `-encoded` companion (BuildKit's rule).
fn add_metadata(md: &mut tonic::metadata::MetadataMap, key: &'static str, values: &[String]) {
    let encode = values.iter().any(|v| !v.is_ascii());
    for v in values {
        let text = if encode { query_escape(v) } else { v.clone() };
        if let Ok(val) = text.parse() {
            md.append(key, val);
        }
    }
    if encode {
        let k: tonic::metadata::MetadataKey<tonic::metadata::Ascii> =
            format!("{key}-encoded").parse().expect("valid key");
        md.insert(k, "1".parse().expect("valid value"));
    }
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A path from the wire as a relative path that stays inside its root.
fn confined(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(Error::Internal(format!(
                    "refusing path {path:?}: it leaves the directory"
                )))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::Internal(format!("empty path {path:?}")));
    }
    Ok(out)
}

/// Receives a directory of the caller into `dest` (created, expected
/// empty). Returns the bytes received on the wire (what BuildKit's
/// "transferring context: 38B" counts: every packet, not only file data).
pub async fn receive(session: &Session, what: &Fetch, dest: &Path) -> Result<u64> {
    std::fs::create_dir_all(dest)?;
    let mut client = FileSyncClient::with_origin(session.channel(), origin())
        .max_decoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel::<Packet>(64);
    let outgoing = crate::util::channel_stream(rx);
    let mut req = tonic::Request::new(outgoing);
    let md = req.metadata_mut();
    add_metadata(md, "dir-name", std::slice::from_ref(&what.dir_name));
    if !what.include.is_empty() {
        add_metadata(md, "include-patterns", &what.include);
    }
    if !what.exclude.is_empty() {
        add_metadata(md, "exclude-patterns", &what.exclude);
    }
    if !what.follow.is_empty() {
        add_metadata(md, "followpaths", &what.follow);
    }
    let mut incoming = client.diff_copy(req).await?.into_inner();

    let mut writer = Writer::new(dest)?;
    let mut walk_done = false;
    let mut fin_sent = false;
    let mut transferred = 0u64;
    while let Some(p) = incoming.next().await {
        let p = p?;
        transferred += prost::Message::encoded_len(&p) as u64;
        match PacketType::try_from(p.r#type).unwrap_or(PacketType::PacketErr) {
            PacketType::PacketStat => match p.stat {
                None => walk_done = true,
                Some(stat) => {
                    let id = writer.next_id;
                    writer.next_id += 1;
                    if writer.entry(&stat)? {
                        tx.send(Packet {
                            r#type: PacketType::PacketReq as i32,
                            id,
                            ..Default::default()
                        })
                        .await
                        .map_err(|_| Error::Internal("the sender went away".into()))?;
                    }
                }
            },
            PacketType::PacketData => writer.data(p.id, &p.data)?,
            PacketType::PacketFin => break,
            PacketType::PacketErr => {
                return Err(Error::Internal(format!(
                    "error from sender: {}",
                    String::from_utf8_lossy(&p.data)
                )))
            }
            PacketType::PacketReq => {}
        }
        if walk_done && writer.open.is_empty() && !fin_sent {
            fin_sent = true;
            let _ = tx
                .send(Packet {
                    r#type: PacketType::PacketFin as i32,
                    ..Default::default()
                })
                .await;
        }
    }
    if !walk_done || !writer.open.is_empty() {
        return Err(Error::Internal(
            "the transfer ended before all files arrived".into(),
        ));
    }
    drop(tx);
    writer.finish();
    Ok(transferred)
}

/// Writes received entries below a root. Every name is resolved inside
/// the root by the kernel (`crate::confined`): the sender chooses the
/// entries and their order, so a symlink it sent earlier (`a -> /etc`)
/// must not carry a later entry (`a/passwd`) out of the directory.
struct Writer {
    root: Confined,
    next_id: u32,
    /// Requested files being written, by STAT index, with their mtimes.
    open: HashMap<u32, (std::fs::File, i64)>,
    /// Directories (relative) and their mtimes, set once their contents
    /// are written.
    dirs: Vec<(PathBuf, i64)>,
}

impl Writer {
    fn new(root: &Path) -> Result<Writer> {
        Ok(Writer {
            root: Confined::open(root)?,
            next_id: 0,
            open: HashMap::new(),
            dirs: Vec::new(),
        })
    }

    /// Creates one entry; true when its data must be requested.
    fn entry(&mut self, stat: &Stat) -> Result<bool> {
        let rel = confined(&stat.path)?;
        // Parents come first in the walk; a hostile order still cannot
        // leave the root: missing parents are made here, as directories,
        // and existing ones (symlinks too) resolve inside the root.
        let (parent, name) = self.root.parent_of(&rel)?;
        let at = fd_path(&parent, &name);
        let perm = unix_perm(stat.mode);
        if stat.mode & go_mode::DIR != 0 {
            match std::fs::create_dir(&at) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) => {}
                Err(e) => return Err(e.into()),
            }
            // A real directory (checked above), so chmod cannot follow a link.
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(perm))?;
            self.dirs.push((rel, stat.mod_time));
            return Ok(false);
        }
        if stat.mode & go_mode::SYMLINK != 0 {
            std::os::unix::fs::symlink(&stat.linkname, &at)?;
            return Ok(false);
        }
        if is_regular(stat.mode) && !stat.linkname.is_empty() {
            // A hard link to a file sent earlier; link(2) does not follow a
            // symlink at the target, so at worst this links the link.
            let (tdir, tname) = self.root.parent_of(&confined(&stat.linkname)?)?;
            std::fs::hard_link(fd_path(&tdir, &tname), &at)?;
            return Ok(false);
        }
        if !is_regular(stat.mode) {
            // Devices, pipes and sockets have no place in a context.
            tracing::debug!(path = %stat.path, "skipping a special file of the context");
            return Ok(false);
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&at)?;
        file.set_permissions(std::fs::Permissions::from_mode(perm))?;
        self.open.insert(self.next_id - 1, (file, stat.mod_time));
        Ok(true)
    }

    fn data(&mut self, id: u32, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            let Some((file, mtime)) = self.open.remove(&id) else {
                return Err(Error::Internal(format!("invalid file request {id}")));
            };
            let _ = file.set_modified(system_time(mtime));
            return Ok(());
        }
        let Some((file, _)) = self.open.get_mut(&id) else {
            return Err(Error::Internal(format!("invalid file request {id}")));
        };
        file.write_all(data)?;
        Ok(())
    }

    fn finish(&mut self) {
        for (rel, mtime) in self.dirs.iter().rev() {
            // Resolved again inside the root; the descriptor's /proc name
            // is that very directory, whatever its path leads to now.
            if let Ok(dir) = self.root.lookup(rel) {
                let at = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
                if let Ok(f) = std::fs::File::open(&at) {
                    let _ = f.set_modified(system_time(*mtime));
                }
            }
        }
    }
}

/// A Go `ModTime` in nanoseconds since the epoch (negative before it).
fn system_time(nanos: i64) -> std::time::SystemTime {
    let d = std::time::Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    }
}

/// The entries below `root` in fsutil's walk order, as STATs.
fn walk(root: &Path) -> std::io::Result<Vec<(Stat, PathBuf)>> {
    let mut out = Vec::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    walk_dir(root, "", &mut out, &mut inodes)?;
    Ok(out)
}

fn walk_dir(
    dir: &Path,
    rel: &str,
    out: &mut Vec<(Stat, PathBuf)>,
    inodes: &mut HashMap<(u64, u64), String>,
) -> std::io::Result<()> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let md = std::fs::symlink_metadata(&path)?;
        let rel_path = if rel.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", name.to_string_lossy())
        };
        let mode = go_mode_of(md.mode());
        let mut stat = Stat {
            path: rel_path.clone(),
            mode,
            uid: md.uid(),
            gid: md.gid(),
            mod_time: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            ..Default::default()
        };
        if !md.is_dir() {
            stat.size = md.size() as i64;
            if md.file_type().is_symlink() {
                stat.linkname = std::fs::read_link(&path)?.to_string_lossy().into_owned();
            } else if md.nlink() > 1 {
                match inodes.get(&(md.dev(), md.ino())) {
                    Some(first) => {
                        stat.linkname = first.clone();
                        stat.size = 0;
                    }
                    None => {
                        inodes.insert((md.dev(), md.ino()), rel_path.clone());
                    }
                }
            }
            if mode & go_mode::DEVICE != 0 {
                let rdev = md.rdev();
                stat.devmajor = libc::major(rdev) as i64;
                stat.devminor = libc::minor(rdev) as i64;
            }
        }
        let is_dir = md.is_dir();
        out.push((stat, path.clone()));
        if is_dir {
            walk_dir(&path, &rel_path, out, inodes)?;
        }
    }
    Ok(())
}

/// Sends the files below `root` to the caller's FileSend target
/// `exporter` (the index of the `--output` it belongs to).
pub async fn send(session: &Session, exporter: usize, root: &Path) -> Result<u64> {
    let entries = {
        let root = root.to_path_buf();
        tokio::task::spawn_blocking(move || walk(&root))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
    };
    let mut client = FileSendClient::with_origin(session.channel(), origin());
    let (tx, rx) = mpsc::channel::<Packet>(64);
    let outgoing = crate::util::channel_stream(rx);
    let mut req = tonic::Request::new(outgoing);
    req.metadata_mut().insert(
        "buildkit-attachable-exporter-id",
        exporter.to_string().parse().expect("digits"),
    );
    // The walk goes out while requests come back.
    let stats: Vec<Stat> = entries.iter().map(|(s, _)| s.clone()).collect();
    let walk_tx = tx.clone();
    tokio::spawn(async move {
        for stat in stats.into_iter().map(Some).chain([None]) {
            let p = Packet {
                r#type: PacketType::PacketStat as i32,
                stat,
                ..Default::default()
            };
            if walk_tx.send(p).await.is_err() {
                break;
            }
        }
    });
    let mut incoming = client.diff_copy(req).await?.into_inner();
    let mut sent = 0u64;
    while let Some(p) = incoming.next().await {
        let p = p?;
        match PacketType::try_from(p.r#type).unwrap_or(PacketType::PacketErr) {
            PacketType::PacketReq => {
                let Some((stat, path)) = entries.get(p.id as usize) else {
                    return Err(Error::Internal(format!("invalid file id {}", p.id)));
                };
                if !is_regular(stat.mode) {
                    return Err(Error::Internal(format!("invalid file id {}", p.id)));
                }
                sent += send_file(&tx, p.id, path).await?;
            }
            PacketType::PacketFin => {
                let _ = tx
                    .send(Packet {
                        r#type: PacketType::PacketFin as i32,
                        ..Default::default()
                    })
                    .await;
                break;
            }
            PacketType::PacketErr => {
                return Err(Error::Internal(format!(
                    "error from receiver: {}",
                    String::from_utf8_lossy(&p.data)
                )))
            }
            _ => {}
        }
    }
    drop(tx);
    // The caller closes its side once it has everything.
    while let Some(Ok(_)) = incoming.next().await {}
    Ok(sent)
}

async fn send_file(tx: &mpsc::Sender<Packet>, id: u32, path: &Path) -> Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; 32 << 10];
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        total += n as u64;
        tx.send(Packet {
            r#type: PacketType::PacketData as i32,
            id,
            data: buf,
            ..Default::default()
        })
        .await
        .map_err(|_| Error::Internal("the receiver went away".into()))?;
    }
    tx.send(Packet {
        r#type: PacketType::PacketData as i32,
        id,
        ..Default::default()
    })
    .await
    .map_err(|_| Error::Internal("the receiver went away".into()))?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_between_go_and_unix() {
        assert_eq!(go_mode_of(libc::S_IFDIR | 0o755), go_mode::DIR | 0o755);
        assert_eq!(go_mode_of(libc::S_IFREG | 0o4755), go_mode::SETUID | 0o755);
        assert_eq!(unix_perm(go_mode::SETGID | go_mode::STICKY | 0o700), 0o3700);
        assert!(is_regular(0o644));
        assert!(!is_regular(go_mode::SYMLINK | 0o777));
    }

    #[test]
    fn wire_paths_stay_inside() {
        assert_eq!(confined("a/./b").unwrap(), PathBuf::from("a/b"));
        assert!(confined("../etc/passwd").is_err());
        assert!(confined("/etc/passwd").is_err());
        assert!(confined("a/../../b").is_err());
    }

    fn stat(path: &str, mode: u32, linkname: &str) -> Stat {
        Stat {
            path: path.into(),
            mode,
            linkname: linkname.into(),
            mod_time: 1_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn entries_behind_a_received_symlink_stay_inside() {
        let base = std::env::temp_dir().join(format!("berth-filesync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (root, outside) = (base.join("root"), base.join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = outside.to_str().unwrap();
        let mut w = Writer::new(&root).unwrap();
        let mut send = |s: Stat| {
            w.next_id += 1;
            w.entry(&s)
        };
        // Both links lead to `outside` on the host; inside the root, `up`
        // leads to the root's own `outside` and `a` to nothing.
        send(stat("a", go_mode::SYMLINK | 0o777, out)).unwrap();
        send(stat("outside", go_mode::DIR | 0o755, "")).unwrap();
        send(stat("up", go_mode::SYMLINK | 0o777, "../outside")).unwrap();
        assert!(send(stat("up/file", 0o644, "")).unwrap());
        send(stat("up/dir", go_mode::DIR | 0o755, "")).unwrap();
        send(stat("up/hard", 0o644, "up/file")).unwrap();
        assert!(send(stat("a/file", 0o644, "")).is_err());
        assert!(send(stat("a/dir", go_mode::DIR | 0o755, "")).is_err());
        // A directory entry over a symlink is refused, not chmod'ed through.
        assert!(send(stat("up", go_mode::DIR | 0o777, "")).is_err());
        w.finish();
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(
            std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(root.join("outside/file").is_file());
        assert!(root.join("outside/dir").is_dir());
        assert!(root.join("outside/hard").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn non_ascii_values_are_query_escaped() {
        assert_eq!(query_escape("dir é"), "dir+%C3%A9");
    }
}
