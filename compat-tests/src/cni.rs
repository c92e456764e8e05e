//! A CNI network configuration of a test's own: a directory with one
//! network list (a bridge of the test's slot, addresses from host-local
//! kept in the directory) for a runtime's `--cni-conf-dir` or containerd's
//! `conf_dir`. Dropping it deletes the bridge the plugin made and the
//! directory.

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct PodNetwork {
    /// The configuration directory.
    pub dir: PathBuf,
    pub bridge: String,
    /// The subnet's first three octets ("10.247.3").
    pub prefix: String,
    tag: String,
}

/// Debian's plugins (containernetworking-plugins, by contrib/setup.sh).
pub const PLUGINS: &str = "/usr/lib/cni";

impl PodNetwork {
    /// A configuration directory, empty until `configure` (a runtime
    /// reads it when asked, so it can be started on it first).
    pub fn new(tag: &str) -> PodNetwork {
        let dir = std::env::temp_dir().join(format!(
            "berth-cni-{tag}-{}-{}",
            std::process::id(),
            crate::unique()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        PodNetwork {
            dir,
            bridge: String::new(),
            prefix: String::new(),
            tag: tag.to_string(),
        }
    }

    /// Writes the network: bridge `<tag>cni<n>` and subnet
    /// `10.<octet>.<n>.0/24`, `n` the test's network slot, so tests at
    /// once (and two runtimes of one test, by tag and octet) never share.
    pub fn configure(&mut self, octet: u8, n: u32) {
        self.bridge = format!("{}cni{n}", self.tag);
        self.prefix = format!("10.{octet}.{n}");
        let list = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "pods",
            "plugins": [{
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": true,
                // No masquerading: pods talk to the host and each other
                // only, and no firewall rule is left to clean up.
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": format!("{}.0/24", self.prefix)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": self.dir.join("ipam"),
                }
            }]
        });
        std::fs::write(self.dir.join("10-pods.conflist"), list.to_string()).unwrap();
    }

    /// Addresses host-local still hands out (a file per address).
    pub fn leased(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("ipam/pods"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&self.prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        if self.bridge.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
            return;
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
