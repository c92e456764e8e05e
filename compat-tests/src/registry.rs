//! A real registry for tests: Debian's docker-registry on 127.0.0.1 at a
//! free port, with a throwaway config and storage, optionally behind an
//! htpasswd file. Dropping it stops the process and deletes its storage.
//!
//! Tests put hand-made content into it over the registry API (with curl),
//! to serve manifests, indexes and layer formats that `docker push` cannot
//! produce, and read its access log to count what clients fetched.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub struct Registry {
    /// "127.0.0.1:PORT", the registry's domain in image references.
    pub addr: String,
    dir: PathBuf,
    child: Child,
    credentials: Option<(String, String)>,
    /// The token server of a registry with token auth.
    token_server: Option<Child>,
}

/// How the registry checks clients.
enum Auth {
    None,
    Htpasswd(String, String),
    /// Bearer tokens from a token server (compat-tests/python/token_server.py).
    Token(String, String),
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start() -> Registry {
        Registry::spawn(Auth::None)
    }

    /// A registry that wants basic auth with this user and password.
    pub fn with_htpasswd(user: &str, password: &str) -> Registry {
        Registry::spawn(Auth::Htpasswd(user.to_string(), password.to_string()))
    }

    /// A registry that wants Bearer tokens, which a token server on
    /// 127.0.0.1 issues to this user and password.
    pub fn with_token_auth(user: &str, password: &str) -> Registry {
        Registry::spawn(Auth::Token(user.to_string(), password.to_string()))
    }

    fn spawn(auth: Auth) -> Registry {
        let dir = std::env::temp_dir().join(format!(
            "berth-registry-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        let mut credentials = None;
        let mut token_server = None;
        match auth {
            Auth::None => {}
            Auth::Htpasswd(user, password) => {
                let hash = bcrypt::hash(&password, 4).unwrap();
                std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    dir.join("htpasswd").display()
                ));
                credentials = Some((user, password));
            }
            Auth::Token(user, password) => {
                let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
                let ok = Command::new("openssl")
                    .args([
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-days",
                        "1",
                        "-subj",
                        "/CN=berth-test-token",
                    ])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&cert)
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(ok.success(), "openssl could not make a certificate");
                let token_port = free_port();
                let script = crate::workspace_root().join("compat-tests/python/token_server.py");
                let log = std::fs::File::create(dir.join("token.log")).unwrap();
                let child = Command::new("python3")
                    .arg(script)
                    .arg(token_port.to_string())
                    .arg(&key)
                    .arg(&cert)
                    .args(["berth-test-registry", "berth-test-issuer", &user, &password])
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                token_server = Some(child);
                let deadline = Instant::now() + Duration::from_secs(30);
                while std::net::TcpStream::connect(("127.0.0.1", token_port)).is_err() {
                    assert!(Instant::now() < deadline, "token server did not listen");
                    std::thread::sleep(Duration::from_millis(20));
                }
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
                    cert.display()
                ));
            }
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start docker-registry (install it with contrib/setup.sh --deps)");
        let reg = Registry {
            addr,
            dir,
            child,
            credentials,
            token_server,
        };
        // Ready once it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}:\n{}",
                reg.addr,
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// How many times a blob was downloaded (GET, not HEAD).
    pub fn blob_downloads(&self, digest: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains(&format!("/blobs/{digest} ")))
            .count()
    }

    fn curl(&self) -> Command {
        let mut c = Command::new("curl");
        c.args(["-sS", "-f"]);
        if let Some((u, p)) = &self.credentials {
            c.arg("-u").arg(format!("{u}:{p}"));
        }
        c
    }

    /// Uploads a blob (POST then PUT); returns its digest.
    pub fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let out = self
            .curl()
            .args(["-X", "POST", "-D", "-", "-o", "/dev/null"])
            .arg(format!("http://{}/v2/{repo}/blobs/uploads/", self.addr))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start upload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let headers = String::from_utf8_lossy(&out.stdout).into_owned();
        let location = headers
            .lines()
            .find_map(|l| {
                l.strip_prefix("Location: ")
                    .or_else(|| l.strip_prefix("location: "))
            })
            .expect("upload location")
            .trim()
            .to_string();
        let location = if location.starts_with('/') {
            format!("http://{}{location}", self.addr)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let body = self.dir.join(format!("blob-{}", &digest[7..19]));
        std::fs::write(&body, data).unwrap();
        let out = self
            .curl()
            .args([
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
            ])
            .arg(format!("@{}", body.display()))
            .arg(format!("{location}{sep}digest={digest}"))
            .output()
            .unwrap();
        std::fs::remove_file(&body).unwrap();
        assert!(
            out.status.success(),
            "finish upload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        digest
    }

    /// Puts a manifest or index under `reference` (a tag or digest);
    /// returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let file = self.dir.join("manifest.json");
        std::fs::write(&file, body).unwrap();
        let out = self
            .curl()
            .args(["-X", "PUT", "-H"])
            .arg(format!("Content-Type: {media_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.addr
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "put manifest: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sha256(body)
    }

    /// Replaces a stored blob's bytes behind the registry's back, keeping
    /// its name: what a corrupted registry or a tampering proxy serves.
    pub fn corrupt_blob(&self, digest: &str) {
        let hex = &digest[7..];
        let path = self.dir.join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ));
        let mut data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
        std::fs::write(&path, data).unwrap();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = &mut self.token_server {
            let _ = t.kill();
            let _ = t.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
