//! The API over TCP (`-H tcp://host:port`), as dockerd serves it: with
//! `--tlsverify` only clients holding a certificate signed by `--tlscacert`
//! get in (mutual TLS). A plain TCP listener gives root on this machine to
//! anyone who can reach the port, so it needs the explicit `--tls=false`
//! and is warned about at every start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::Config;

/// A bound TCP listener and how its connections are wrapped.
pub struct Endpoint {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

/// dockerd's default certificate directory: $DOCKER_CERT_PATH or ~/.docker.
fn cert_dir() -> PathBuf {
    std::env::var_os("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".docker")
        })
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("could not read certificate {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid certificate {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

/// The TLS configuration: our certificate and key, and client
/// certificates verified against the CA.
fn server_config(config: &Config) -> anyhow::Result<rustls::ServerConfig> {
    let dir = cert_dir();
    let ca = config
        .tlscacert
        .clone()
        .unwrap_or_else(|| dir.join("ca.pem"));
    let cert = config
        .tlscert
        .clone()
        .unwrap_or_else(|| dir.join("cert.pem"));
    let key = config.tlskey.clone().unwrap_or_else(|| dir.join("key.pem"));
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&ca)? {
        roots
            .add(c)
            .with_context(|| format!("invalid CA certificate {}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .context("building the client certificate verifier")?;
    let key = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("could not read key {}", key.display()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&cert)?, key)
        .context("the server certificate does not match its key")?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Binds every tcp:// host, or says why the configuration is refused.
/// Called before the unix socket listens, so a refused start serves nothing.
pub async fn bind(config: &Config) -> anyhow::Result<Vec<Endpoint>> {
    let hosts = config.tcp_hosts();
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    let tls = match (config.tlsverify, config.tls) {
        (true, _) => Some(TlsAcceptor::from(Arc::new(server_config(config)?))),
        (false, Some(false)) => {
            warn!("!!! serving the API on plain TCP (--tls=false): anyone who can reach {} has root on this machine. Use --tlsverify with client certificates instead.", hosts.join(", "));
            None
        }
        (false, Some(true)) => bail!(
            "--tls without --tlsverify would let any client in over TCP; use --tlsverify with --tlscacert, --tlscert and --tlskey"
        ),
        (false, None) => bail!(
            "refusing to serve the API on TCP without TLS: add --tlsverify (with --tlscacert, --tlscert, --tlskey), or --tls=false to serve it unprotected"
        ),
    };
    let mut out = Vec::new();
    for h in hosts {
        let addr: SocketAddr = h
            .parse()
            .with_context(|| format!("invalid tcp address {h:?}: use tcp://ip:port"))?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on tcp://{addr}"))?;
        let local = listener.local_addr()?;
        info!(address = %format!("tcp://{local}"), tls = tls.is_some(), "berthd listening");
        out.push(Endpoint {
            listener,
            tls: tls.clone(),
        });
    }
    Ok(out)
}

/// Serves each endpoint until the process stops. A connection whose TLS
/// handshake fails (no or a foreign client certificate) is dropped.
pub fn serve(endpoints: Vec<Endpoint>, app: crate::api::Service) {
    for ep in endpoints {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match ep.listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "tcp accept failed");
                        continue;
                    }
                };
                let app = app.clone();
                let tls = ep.tls.clone();
                tokio::spawn(async move {
                    let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                        app,
                        |r: hyper::Request<hyper::body::Incoming>| r.map(axum::body::Body::new),
                    ));
                    let http = hyper::server::conn::http1::Builder::new();
                    let served = match tls {
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                acceptor.accept(stream),
                            )
                            .await;
                            match handshake {
                                Ok(Ok(s)) => {
                                    http.serve_connection(TokioIo::new(s), service)
                                        .with_upgrades()
                                        .await
                                }
                                Ok(Err(e)) => {
                                    debug!(%peer, error = %e, "tls handshake refused");
                                    return;
                                }
                                Err(_) => return,
                            }
                        }
                        None => {
                            http.serve_connection(TokioIo::new(stream), service)
                                .with_upgrades()
                                .await
                        }
                    };
                    if let Err(e) = served {
                        debug!(%peer, error = %e, "tcp connection ended");
                    }
                });
            }
        });
    }
}
