//! The QUIC endpoint: TLS 1.3 only, mutual authentication with node-key certificates, ALPN
//! `cairn/2` (one per protocol version), keep-alive below the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{ALPN, P2pConfig};
use crate::identity::NodeIdentity;
use crate::tls::{PeerVerifier, TlsError, node_certificate};

/// Why the endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TLS material or configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Binding the UDP socket failed.
    #[error("cannot listen for P2P on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

fn transport_config(cfg: &P2pConfig) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(cfg.keep_alive));
    t.max_idle_timeout(quinn::IdleTimeout::try_from(cfg.idle_timeout).ok());
    // One bidirectional stream per connection carries the protocol; refuse more.
    t.max_concurrent_bidi_streams(1u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    Arc::new(t)
}

/// Server and client QUIC configurations for `identity`.
pub fn configs(identity: &NodeIdentity, cfg: &P2pConfig) -> Result<(quinn::ServerConfig, quinn::ClientConfig), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PeerVerifier::new(&provider);
    let (cert, key) = node_certificate(identity.keypair().signing_key())?;

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(vec![cert.clone()], key.clone_key())?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let server = quinn::crypto::rustls::QuicServerConfig::try_from(server).map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
    server.transport_config(transport_config(cfg));

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![cert], key)?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    let client = quinn::crypto::rustls::QuicClientConfig::try_from(client).map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let mut client = quinn::ClientConfig::new(Arc::new(client));
    client.transport_config(transport_config(cfg));
    Ok((server, client))
}

/// Binds a QUIC endpoint on `addr` that accepts and dials with `identity`. Needs a tokio
/// runtime.
pub fn bind(identity: &NodeIdentity, cfg: &P2pConfig, addr: SocketAddr) -> Result<quinn::Endpoint, TransportError> {
    let (server, client) = configs(identity, cfg)?;
    let bind_error = |source| TransportError::Bind { addr, source };
    let runtime = quinn::default_runtime().ok_or_else(|| bind_error(std::io::Error::other("no async runtime")))?;
    let socket = crate::udp::wrap(std::net::UdpSocket::bind(addr).map_err(bind_error)?, &runtime).map_err(bind_error)?;
    let mut endpoint = quinn::Endpoint::new_with_abstract_socket(quinn::EndpointConfig::default(), Some(server), socket, runtime).map_err(bind_error)?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}
