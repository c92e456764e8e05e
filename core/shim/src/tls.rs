//! The TLS client of syslog over `tcp+tls://` (Docker's `syslog-tls-*`
//! options): the receiver's certificate checked against the given CA (or
//! the host's bundle), a client certificate when one is given, or no check
//! at all with `syslog-tls-skip-verify`.
//!
//! The handshake is made while the shim starts, blocking, so that a
//! receiver that cannot be trusted fails the start as on dockerd; after
//! that the socket is non-blocking and [`crate::ship`] writes through
//! [`Tls::send`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use berth_proto::shim::SyslogTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Debian's CA bundle: the roots when no CA is given.
const HOST_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Plaintext rustls holds before a write returns short: the queue in
/// front of it does the rest of the waiting.
const BUFFERED: usize = 64 * 1024;

pub struct Tls {
    conn: ClientConnection,
    sock: TcpStream,
}

impl Tls {
    /// Connects and completes the handshake with `host` (the name or
    /// address its certificate must carry).
    pub fn connect(sock: TcpStream, host: &str, settings: &SyslogTls) -> Result<Tls, String> {
        let config = config(settings)?;
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|e| format!("{host}: {e}"))?
            .to_owned();
        let mut conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        conn.set_buffer_limit(Some(BUFFERED));
        let mut sock = sock;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| format!("tls: {e}"))?;
        }
        Ok(Tls { conn, sock })
    }

    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// Takes what fits of `msg` (0 bytes: nothing fits now, said as
    /// WouldBlock) and writes out as much as the socket takes.
    pub fn send(&mut self, msg: &[u8]) -> std::io::Result<usize> {
        self.flush()?;
        let n = self.conn.writer().write(msg)?;
        match self.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Records rustls holds that the socket has not taken yet.
    pub fn backlog(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes out what rustls holds, until the socket would block.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.discard_incoming();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        Ok(())
    }

    /// Reads what the receiver sent (session tickets, alerts) and drops
    /// it: a socket closed with unread data sends a reset, and the
    /// receiver then loses what it had not read yet of ours.
    fn discard_incoming(&mut self) {
        let mut sink = [0u8; 4096];
        while let Ok(n) = self.conn.read_tls(&mut self.sock) {
            if n == 0 || self.conn.process_new_packets().is_err() {
                return;
            }
            while matches!(self.conn.reader().read(&mut sink), Ok(n) if n > 0) {}
        }
    }
}

impl Drop for Tls {
    /// Ends the session as TLS asks (close_notify), with nothing unread.
    fn drop(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

fn config(settings: &SyslogTls) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if settings.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        let bundle = if settings.ca_cert.is_empty() {
            HOST_BUNDLE
        } else {
            settings.ca_cert.as_str()
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(bundle).map_err(|e| format!("{bundle}: {e}"))? {
            roots
                .add(cert.map_err(|e| format!("{bundle}: {e}"))?)
                .map_err(|e| format!("{bundle}: {e}"))?;
        }
        builder.with_root_certificates(roots)
    };
    let config = if settings.cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = CertificateDer::pem_file_iter(&settings.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", settings.cert))?;
        let key = PrivateKeyDer::from_pem_file(&settings.key)
            .map_err(|e| format!("{}: {e}", settings.key))?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| e.to_string())?
    };
    Ok(Arc::new(config))
}

/// `syslog-tls-skip-verify`: any certificate is taken; signatures are still
/// checked so that the handshake itself is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
