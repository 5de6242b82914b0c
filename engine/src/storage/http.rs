//! The HTTP client of the S3 backend: hyper over a TCP and TLS connector of floe's own.
//!
//! Owning the connector gives three things the SDK's default client does not: trust as the user
//! configured it for this endpoint alone (the system's authorities plus `--cacert`,
//! `AWS_CA_BUNDLE` or the AWS profile's `ca_bundle`), a client certificate for mutual TLS, and
//! every network failure named as a [`NetworkProblem`] that says what happened and what to do,
//! instead of the layers of the HTTP stack. The layers are kept in [`NetworkFailure::causes`]
//! for `-v`.
//!
//! Failures that may pass (a refused or broken connection, a name that did not resolve, a
//! connect timeout) are handed to the SDK as I/O errors, which it retries; a certificate or
//! protocol problem is final at once, since no retry can change it.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::BackendError;

/// How to trust the object store's certificate, and which certificate to show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM files of authorities trusted for this endpoint besides the system's (`--cacert`).
    /// Empty: `AWS_CA_BUNDLE`, else the AWS profile's `ca_bundle`, else the system's alone.
    pub cacert: Vec<PathBuf>,
    /// One PEM file with the client certificate (and its chain) and private key.
    pub client_cert: Option<PathBuf>,
    /// Accept any certificate: for a test endpoint, never the default.
    pub insecure: bool,
}

/// A file of authorities, and the setting that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    /// The PEM file.
    pub path: PathBuf,
    /// `--cacert`, `AWS_CA_BUNDLE`, or `ca_bundle of AWS profile NAME`.
    pub origin: String,
}

/// The authorities to add to the system's, by precedence: the `--cacert` files, else the
/// `AWS_CA_BUNDLE` file, else the `ca_bundle` of the AWS profile (`profile` is asked only
/// when neither is set). One source wins; they are not merged.
pub fn choose_ca_files(
    cacert: &[PathBuf],
    aws_ca_bundle: Option<PathBuf>,
    profile: impl FnOnce() -> Option<(String, PathBuf)>,
) -> Vec<CaFile> {
    let file = |path: &Path, origin: &str| CaFile {
        path: path.to_path_buf(),
        origin: origin.to_string(),
    };
    if !cacert.is_empty() {
        return cacert.iter().map(|p| file(p, "--cacert")).collect();
    }
    if let Some(p) = aws_ca_bundle {
        return vec![file(&p, "AWS_CA_BUNDLE")];
    }
    match profile() {
        Some((name, p)) => vec![file(&p, &format!("ca_bundle of AWS profile {name}"))],
        None => Vec::new(),
    }
}

/// What went wrong on the way to the object store, in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkProblem {
    /// The host name did not resolve.
    Unresolved {
        /// The endpoint's host.
        host: String,
    },
    /// Nothing listens at the address.
    Refused {
        /// `host:port`.
        peer: String,
    },
    /// No connection (TCP and TLS) within the connect timeout.
    ConnectTimeout {
        /// `host:port`.
        peer: String,
        /// The timeout.
        limit: Duration,
    },
    /// The connection failed for another reason (no route, network down).
    ConnectFailed {
        /// `host:port`.
        peer: String,
        /// The system's words.
        reason: String,
    },
    /// The connection closed or was reset before the answer arrived.
    ConnectionLost {
        /// `host:port`.
        peer: String,
    },
    /// No complete answer within the limit of one attempt, on the last attempt.
    AttemptTimeout {
        /// The limit (`--s3-timeout`).
        limit: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The endpoint answered in something other than TLS (plain HTTP, most likely).
    NotTls {
        /// `host:port`.
        peer: String,
    },
    /// The certificate chains to no trusted authority.
    UnknownIssuer {
        /// The endpoint's host.
        host: String,
        /// The certificate's subject, when it parsed.
        subject: Option<String>,
        /// Its issuer, when it parsed.
        issuer: Option<String>,
    },
    /// The certificate is valid for other names only.
    WrongName {
        /// The endpoint's host.
        host: String,
        /// The names it is valid for.
        names: Vec<String>,
    },
    /// The certificate is refused for another reason (expired, not yet valid, revoked).
    CertificateRefused {
        /// The endpoint's host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The store offers no TLS version floe speaks (1.2 and 1.3).
    TlsVersion {
        /// `host:port`.
        peer: String,
    },
    /// The store wants a client certificate and none was given.
    ClientCertificateRequired {
        /// `host:port`.
        peer: String,
    },
    /// The store refused the client certificate given.
    ClientCertificateRefused {
        /// `host:port`.
        peer: String,
        /// The alert it sent.
        reason: String,
    },
    /// Another TLS failure.
    Tls {
        /// `host:port`.
        peer: String,
        /// rustls' words.
        reason: String,
    },
    /// Anything else.
    Other {
        /// The outermost error's words.
        message: String,
    },
}

const TRUST_HINT: &str = "add its authority with --cacert FILE or AWS_CA_BUNDLE=FILE (or, for a \
                          test endpoint only, skip the check with --insecure-tls)";

impl fmt::Display for NetworkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use NetworkProblem::*;
        match self {
            Unresolved { host } => write!(
                f,
                "cannot resolve the host name {host:?}: check the endpoint of the repository \
                 location, and this machine's DNS"
            ),
            Refused { peer } => write!(
                f,
                "connection refused by {peer}: is the object store running there, and are the \
                 endpoint's host and port right?"
            ),
            ConnectTimeout { peer, limit } => write!(
                f,
                "no connection to {peer} within {} (the connect timeout): is the host up, and \
                 does a firewall let the port through?",
                human(*limit)
            ),
            ConnectFailed { peer, reason } => write!(f, "cannot connect to {peer}: {reason}"),
            ConnectionLost { peer } => write!(
                f,
                "the connection to {peer} broke off before the answer arrived"
            ),
            AttemptTimeout { limit, attempts } => write!(
                f,
                "the object store sent no complete answer within {} (--s3-timeout), {attempts} \
                 attempt{}",
                human(*limit),
                if *attempts == 1 { "" } else { "s" }
            ),
            NotTls { peer } => write!(
                f,
                "{peer} does not answer in TLS: is the endpoint http:// rather than https://?"
            ),
            UnknownIssuer {
                host,
                subject,
                issuer,
            } => {
                let subject = subject.as_deref().unwrap_or("unreadable subject");
                match issuer.as_deref() {
                    Some(i) if i == subject => write!(
                        f,
                        "the certificate of {host} ({subject}) is self-signed, and not trusted: \
                         {TRUST_HINT}"
                    ),
                    Some(i) => write!(
                        f,
                        "the certificate of {host} ({subject}) is issued by {i}, an authority \
                         this machine does not trust: {TRUST_HINT}"
                    ),
                    None => write!(
                        f,
                        "the certificate of {host} is issued by an authority this machine does \
                         not trust: {TRUST_HINT}"
                    ),
                }
            }
            WrongName { host, names } if names.is_empty() => write!(
                f,
                "the certificate of {host} is not valid for that name: use the name it was \
                 issued for in the endpoint"
            ),
            WrongName { host, names } => write!(
                f,
                "the certificate of {host} is for {}, not {host}: use one of those names in the \
                 endpoint, or give the store a certificate for {host}",
                names.join(", ")
            ),
            CertificateRefused { host, reason } => {
                write!(f, "the certificate of {host} is refused: {reason}")
            }
            TlsVersion { peer } => write!(
                f,
                "{peer} offers no TLS version floe speaks (1.2 or 1.3): enable one of them on \
                 the store"
            ),
            ClientCertificateRequired { peer } => write!(
                f,
                "{peer} asks for a client certificate: give one with --tls-client-cert FILE \
                 (certificate and private key in one PEM file)"
            ),
            ClientCertificateRefused { peer, reason } => write!(
                f,
                "{peer} refused the client certificate of --tls-client-cert ({reason}): is it \
                 issued by an authority the store trusts, and still valid?"
            ),
            Tls { peer, reason } => write!(f, "TLS with {peer} failed: {reason}"),
            Other { message } => write!(f, "{message}"),
        }
    }
}

impl NetworkProblem {
    /// True when a retry may succeed.
    fn is_transient(&self) -> bool {
        use NetworkProblem::*;
        matches!(
            self,
            Unresolved { .. }
                | Refused { .. }
                | ConnectTimeout { .. }
                | ConnectFailed { .. }
                | ConnectionLost { .. }
                | AttemptTimeout { .. }
        )
    }
}

/// A network failure: the problem, and the chain of causes under it (for `-v`).
#[derive(Debug, Clone)]
pub struct NetworkFailure {
    /// What happened.
    pub problem: NetworkProblem,
    /// The errors of the HTTP stack, outermost first.
    pub causes: Vec<String>,
}

impl fmt::Display for NetworkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.problem.fmt(f)
    }
}

impl StdError for NetworkFailure {}

impl NetworkFailure {
    /// True for a problem of TLS itself (certificates, versions, alerts).
    fn is_tls(&self) -> bool {
        use NetworkProblem::*;
        matches!(
            self.problem,
            NotTls { .. }
                | UnknownIssuer { .. }
                | WrongName { .. }
                | CertificateRefused { .. }
                | TlsVersion { .. }
                | ClientCertificateRequired { .. }
                | ClientCertificateRefused { .. }
                | Tls { .. }
        )
    }

    fn new(problem: NetworkProblem, cause: Option<&(dyn StdError + 'static)>) -> Self {
        let mut causes: Vec<String> = Vec::new();
        for c in cause.into_iter().flat_map(chain) {
            let s = c.to_string();
            if causes.last() != Some(&s) {
                causes.push(s);
            }
        }
        NetworkFailure { problem, causes }
    }

    /// The failure `err` describes, for a request to `peer`.
    fn classify(err: &(dyn StdError + 'static), peer: &Peer) -> Self {
        if let Some(f) = chain(err).find_map(|c| c.downcast_ref::<NetworkFailure>()) {
            return f.clone();
        }
        // A TLS error anywhere under it says the most; otherwise any I/O error, or a
        // connection hyper saw close, is a lost connection and retried, as the SDK's own
        // client does.
        let problem = chain(err)
            .find_map(|c| {
                c.downcast_ref::<rustls::Error>()
                    .map(|t| tls_problem(t, peer))
            })
            .or_else(|| {
                chain(err)
                    .any(is_lost_connection)
                    .then(|| NetworkProblem::ConnectionLost { peer: peer.addr() })
            })
            .unwrap_or_else(|| NetworkProblem::Other {
                message: err.to_string(),
            });
        NetworkFailure::new(problem, Some(err))
    }
}

/// True for an error of the connection itself: any I/O error, any HTTP-level failure that is
/// not a misuse of the client (a connection the server closed or cut, a reply that broke off or
/// did not parse: hyper reports these under several kinds, such as `SendRequest`), or a failed
/// connect. These are what the SDK's own client retries.
fn is_lost_connection(e: &(dyn StdError + 'static)) -> bool {
    e.is::<io::Error>()
        || e.downcast_ref::<hyper::Error>()
            .is_some_and(|e| !e.is_user())
        || e.is::<hyper_util::client::legacy::Error>()
}

/// `err` and the errors under it. After an `io::Error` comes its payload (`get_ref`), which
/// `io::Error::source` skips.
pub(super) fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| match e.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|p| p as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

fn tls_problem(e: &rustls::Error, peer: &Peer) -> NetworkProblem {
    use rustls::AlertDescription as A;
    use rustls::Error as E;
    let host = peer.host.clone();
    match e {
        E::InvalidCertificate(CertificateError::Other(o)) => {
            match o.0.downcast_ref::<UntrustedCertificate>() {
                Some(u) => NetworkProblem::UnknownIssuer {
                    host,
                    subject: u.subject.clone(),
                    issuer: u.issuer.clone(),
                },
                None => NetworkProblem::CertificateRefused {
                    host,
                    reason: o.0.to_string(),
                },
            }
        }
        E::InvalidCertificate(CertificateError::UnknownIssuer) => NetworkProblem::UnknownIssuer {
            host,
            subject: None,
            issuer: None,
        },
        E::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. }) => {
            NetworkProblem::WrongName {
                host,
                names: presented.iter().map(|n| presented_name(n)).collect(),
            }
        }
        E::InvalidCertificate(CertificateError::NotValidForName) => NetworkProblem::WrongName {
            host,
            names: Vec::new(),
        },
        E::InvalidCertificate(c) => NetworkProblem::CertificateRefused {
            host,
            reason: c.to_string(),
        },
        E::PeerIncompatible(rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13)
        | E::AlertReceived(A::ProtocolVersion) => NetworkProblem::TlsVersion { peer: peer.addr() },
        E::AlertReceived(A::CertificateRequired) => {
            NetworkProblem::ClientCertificateRequired { peer: peer.addr() }
        }
        E::AlertReceived(
            a @ (A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied
            | A::DecryptError),
        ) if peer.client_cert => NetworkProblem::ClientCertificateRefused {
            peer: peer.addr(),
            reason: format!("alert {a:?}"),
        },
        E::AlertReceived(A::HandshakeFailure) if !peer.client_cert => NetworkProblem::Tls {
            peer: peer.addr(),
            reason: "the store refused the handshake; if it wants a client certificate, give \
                     one with --tls-client-cert FILE"
                .into(),
        },
        E::InvalidMessage(_) => NetworkProblem::NotTls { peer: peer.addr() },
        e => NetworkProblem::Tls {
            peer: peer.addr(),
            reason: e.to_string(),
        },
    }
}

/// A name as rustls reports it (`DnsName("a.example")`, `IpAddress(V4(..))`), as written in
/// an endpoint (`a.example`).
fn presented_name(n: &str) -> String {
    match (n.find('"'), n.rfind('"')) {
        (Some(a), Some(b)) if a < b => n[a + 1..b].to_string(),
        _ => n.to_string(),
    }
}

/// Where a request goes: the endpoint's host and port, and whether a client certificate is
/// offered (which tells a refused certificate from a missing one).
#[derive(Debug, Clone)]
struct Peer {
    host: String,
    port: u16,
    client_cert: bool,
}

impl Peer {
    fn of(uri: &http::Uri, client_cert: bool) -> Self {
        let https = uri.scheme_str() == Some("https");
        Peer {
            host: uri.host().unwrap_or_default().to_string(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            client_cert,
        }
    }

    /// `host:port`, as it is written in the endpoint.
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The host without the brackets of an IPv6 literal.
    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// The SDK's HTTP client for these options. `ca_files` are added to the system's authorities.
/// TLS is set up only when `https` (an `http://` endpoint never needs it).
pub(crate) fn client(
    tls: &TlsOptions,
    ca_files: &[CaFile],
    https: bool,
    connect_timeout: Duration,
) -> Result<SharedHttpClient, BackendError> {
    let config = if https {
        Some(Arc::new(tls_config(tls, ca_files)?))
    } else {
        None
    };
    let connector = Connector {
        tls: config,
        timeout: connect_timeout,
        client_cert: tls.client_cert.is_some(),
    };
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder.pool_timer(TokioTimer::new());
    Ok(SharedHttpClient::new(Client {
        hyper: builder.build(connector.clone()),
        connector,
    }))
}

/// One request of a document to a URL that is not the object store's (a notification, a
/// metrics gateway), with the same TLS settings and failure messages. Gives the HTTP status;
/// `limit` bounds the whole request.
pub fn send(
    method: &str,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    tls: &TlsOptions,
    limit: Duration,
) -> Result<u16, BackendError> {
    let unreachable = |failure: NetworkFailure| BackendError::Unreachable {
        op: "send",
        location: url.to_string(),
        problem: Box::new(failure.problem),
        causes: failure.causes,
    };
    let other =
        |message: String| unreachable(NetworkFailure::new(NetworkProblem::Other { message }, None));
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(
            http::header::USER_AGENT,
            concat!("floe/", env!("CARGO_PKG_VERSION")),
        )
        .body(SdkBody::from(body))
        .map_err(|e| other(format!("{url} is not a URL floe can send to: {e}")))?;
    let https = request.uri().scheme_str() == Some("https");
    let peer = Peer::of(request.uri(), tls.client_cert.is_some());
    let connector = Connector {
        tls: if https {
            Some(Arc::new(tls_config(tls, &[])?))
        } else {
            None
        },
        timeout: limit,
        client_cert: tls.client_cert.is_some(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| other(format!("starting the HTTP client: {e}")))?;
    runtime.block_on(async move {
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build::<_, SdkBody>(connector);
        match tokio::time::timeout(limit, client.request(request)).await {
            Ok(Ok(response)) => Ok(response.status().as_u16()),
            Ok(Err(e)) => Err(unreachable(NetworkFailure::classify(&e, &peer))),
            Err(_) => Err(other(format!("no answer within {}", human(limit)))),
        }
    })
}

fn tls_config(tls: &TlsOptions, ca_files: &[CaFile]) -> Result<rustls::ClientConfig, BackendError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure {
        Arc::new(AcceptAny(provider.clone()))
    } else {
        let roots = Arc::new(root_store(ca_files)?);
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| BackendError::TlsSetup {
                setting: "the trust store".into(),
                path: PathBuf::new(),
                problem: e.to_string(),
            })?;
        Arc::new(Explaining(inner))
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::TlsSetup {
            setting: "TLS".into(),
            path: PathBuf::new(),
            problem: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let (certs, key) = client_identity(path)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| tls_file_error("--tls-client-cert", path, e.to_string()))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn tls_file_error(setting: &str, path: &Path, problem: String) -> BackendError {
    BackendError::TlsSetup {
        setting: setting.to_string(),
        path: path.to_path_buf(),
        problem,
    }
}

fn read_pem(setting: &str, path: &Path) -> Result<Vec<u8>, BackendError> {
    std::fs::read(path).map_err(|e| tls_file_error(setting, path, format!("cannot be read: {e}")))
}

/// The system's authorities (as `SSL_CERT_FILE` and `SSL_CERT_DIR` may point them elsewhere),
/// plus those of `ca_files`. A file without a certificate, or with one that does not parse, is
/// an error: a typo must not silently leave the store untrusted.
fn root_store(ca_files: &[CaFile]) -> Result<rustls::RootCertStore, BackendError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for f in ca_files {
        let pem = read_pem(&f.origin, &f.path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_file_error(&f.origin, &f.path, format!("is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(tls_file_error(
                &f.origin,
                &f.path,
                "holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        for c in certs {
            roots.add(c).map_err(|e| {
                tls_file_error(&f.origin, &f.path, format!("holds a bad certificate: {e}"))
            })?;
        }
    }
    Ok(roots)
}

/// The certificate chain and private key of a `--tls-client-cert` file.
fn client_identity(
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), BackendError> {
    const SETTING: &str = "--tls-client-cert";
    let pem = read_pem(SETTING, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_file_error(SETTING, path, format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_file_error(
            SETTING,
            path,
            "holds no certificate: the file must hold the certificate and its private key, PEM"
                .into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        tls_file_error(
            SETTING,
            path,
            "holds no private key: the file must hold the certificate and its private key, PEM"
                .into(),
        )
    })?;
    Ok((certs, key))
}

/// A certificate that chains to no trusted authority, with the names to tell the user.
#[derive(Debug)]
struct UntrustedCertificate {
    subject: Option<String>,
    issuer: Option<String>,
}

impl fmt::Display for UntrustedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("certificate issued by an unknown authority")
    }
}

impl StdError for UntrustedCertificate {}

/// The standard verifier, whose "unknown issuer" also names the certificate and its issuer.
#[derive(Debug)]
struct Explaining(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for Explaining {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    let names = webpki::EndEntityCert::try_from(end_entity).ok();
                    let untrusted = UntrustedCertificate {
                        subject: names.as_ref().and_then(|c| dn::describe(c.subject())),
                        issuer: names.as_ref().and_then(|c| dn::describe(c.issuer())),
                    };
                    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                        Arc::new(untrusted),
                    )))
                }
                e => e,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `--insecure-tls`: any certificate is accepted; the handshake signatures are still checked,
/// so the connection is encrypted, but to whoever answers.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens connections: resolves, connects within the timeout, and speaks TLS for `https`.
#[derive(Clone)]
struct Connector {
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    client_cert: bool,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = NetworkFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, NetworkFailure>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), NetworkFailure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let peer = Peer::of(&uri, this.client_cert);
            let https = uri.scheme_str() == Some("https");
            this.open_within(&peer, https).await.map(TokioIo::new)
        })
    }
}

impl Connector {
    /// [`Connector::open`] within the connect timeout.
    async fn open_within(&self, peer: &Peer, https: bool) -> Result<Stream, NetworkFailure> {
        match tokio::time::timeout(self.timeout, self.open(peer, https)).await {
            Ok(stream) => stream,
            Err(_) => Err(NetworkFailure::new(
                NetworkProblem::ConnectTimeout {
                    peer: peer.addr(),
                    limit: self.timeout,
                },
                None,
            )),
        }
    }

    async fn open(&self, peer: &Peer, https: bool) -> Result<Stream, NetworkFailure> {
        let tcp = tcp_connect(peer).await?;
        if !https {
            return Ok(Stream::Plain(tcp));
        }
        let Some(config) = &self.tls else {
            let message = "TLS is not set up for this endpoint".to_string();
            return Err(NetworkFailure::new(NetworkProblem::Other { message }, None));
        };
        let name = ServerName::try_from(peer.bare_host().to_string()).map_err(|e| {
            let problem = NetworkProblem::Tls {
                peer: peer.addr(),
                reason: format!("{:?} is not a host name TLS can check", peer.host),
            };
            NetworkFailure::new(problem, Some(&e))
        })?;
        tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map(|s| Stream::Tls(Box::new(s)))
            .map_err(|e| NetworkFailure::classify(&e, peer))
    }
}

impl Connector {
    /// What a TLS server that closed a connection without an answer has to say. A TLS 1.3
    /// server refuses a client certificate (or its absence) only after the handshake, and its
    /// alert is lost when the request crosses it on the wire; a fresh connection that sends
    /// nothing and listens for a moment receives it. `None` when nothing TLS-related comes.
    async fn listen_for_alert(&self, peer: &Peer) -> Option<NetworkFailure> {
        use tokio::io::AsyncReadExt;
        let mut stream = match self.open_within(peer, true).await {
            Ok(s) => s,
            Err(f) => return f.is_tls().then_some(f),
        };
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await {
            Ok(Err(e)) => Some(NetworkFailure::classify(&e, peer)).filter(|f| f.is_tls()),
            _ => None,
        }
    }
}

async fn tcp_connect(peer: &Peer) -> Result<TcpStream, NetworkFailure> {
    let addrs = tokio::net::lookup_host((peer.bare_host(), peer.port))
        .await
        .map_err(|e| {
            let host = peer.host.clone();
            NetworkFailure::new(NetworkProblem::Unresolved { host }, Some(&e))
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                // Requests are written whole; waiting to fill a segment only adds latency.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    let peer_addr = peer.addr();
    Err(match last {
        None => NetworkFailure::new(
            NetworkProblem::Unresolved {
                host: peer.host.clone(),
            },
            None,
        ),
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            NetworkFailure::new(NetworkProblem::Refused { peer: peer_addr }, Some(&e))
        }
        Some(e) => NetworkFailure::new(
            NetworkProblem::ConnectFailed {
                peer: peer_addr,
                reason: e.to_string(),
            },
            Some(&e),
        ),
    })
}

/// A connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The SDK's view of the client: requests in, responses or classified failures out.
#[derive(Clone)]
struct Client {
    hyper: hyper_util::client::legacy::Client<Connector, SdkBody>,
    connector: Connector,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl HttpConnector for Client {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let peer = Peer::of(request.uri(), self.connector.client_cert);
        let https = request.uri().scheme_str() == Some("https");
        let response = self.hyper.request(request);
        let connector = self.connector.clone();
        HttpConnectorFuture::new(async move {
            match response.await {
                Ok(r) => HttpResponse::try_from(r.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => {
                    let mut failure = NetworkFailure::classify(&e, &peer);
                    let unexplained = matches!(
                        failure.problem,
                        NetworkProblem::ConnectionLost { .. } | NetworkProblem::Other { .. }
                    );
                    if https && unexplained {
                        if let Some(f) = connector.listen_for_alert(&peer).await {
                            failure = f;
                        }
                    }
                    let transient = failure.problem.is_transient();
                    let boxed = Box::new(failure);
                    Err(if transient {
                        ConnectorError::io(boxed)
                    } else {
                        ConnectorError::other(boxed, None)
                    })
                }
            }
        })
    }
}

impl HttpClient for Client {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A duration as people write it: `250ms`, `10s`, `5m`, `1h30m`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Distinguished names of certificates, as `CN=name, O=organisation`: read defensively, since
/// the certificate comes from whoever answered.
mod dn {
    /// One DER element: its tag, its contents and what follows it.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }

    /// The elements of a constructed element's contents.
    fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
        std::iter::from_fn(move || {
            let (tag, value, rest) = element(input)?;
            input = rest;
            Some((tag, value))
        })
    }

    /// `CN=…, OU=…, O=…, C=…` of a Name's contents (its RDN sets); `None` when it names
    /// nothing readable.
    pub fn describe(name: &[u8]) -> Option<String> {
        let mut parts = Vec::new();
        for (tag, set) in elements(name) {
            if tag != 0x31 {
                return None;
            }
            for (tag, pair) in elements(set) {
                if tag != 0x30 {
                    return None;
                }
                let mut it = elements(pair);
                let (Some((0x06, oid)), Some((kind, value))) = (it.next(), it.next()) else {
                    return None;
                };
                let label = match oid {
                    [0x55, 0x04, 0x03] => "CN",
                    [0x55, 0x04, 0x0b] => "OU",
                    [0x55, 0x04, 0x0a] => "O",
                    [0x55, 0x04, 0x06] => "C",
                    _ => continue,
                };
                // UTF8String, PrintableString, IA5String, TeletexString (read as Latin-1).
                let text = match kind {
                    0x0c | 0x13 | 0x16 => String::from_utf8_lossy(value).into_owned(),
                    0x14 => value.iter().map(|&b| b as char).collect(),
                    _ => continue,
                };
                let text: String = text.chars().filter(|c| !c.is_control()).collect();
                parts.push(format!("{label}={text}"));
            }
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_source_of_authorities_wins() {
        let p = |s: &str| PathBuf::from(s);
        let asked = std::cell::Cell::new(false);
        let profile = || {
            asked.set(true);
            Some(("work".to_string(), p("/etc/work.pem")))
        };
        let flags = choose_ca_files(&[p("a.pem"), p("b.pem")], Some(p("env.pem")), profile);
        assert_eq!(flags.len(), 2);
        assert_eq!(flags[1].origin, "--cacert");
        assert!(!asked.get(), "the profile is not read when a flag is given");
        let env = choose_ca_files(&[], Some(p("env.pem")), profile);
        assert_eq!(
            (env[0].path.as_path(), env[0].origin.as_str()),
            (Path::new("env.pem"), "AWS_CA_BUNDLE")
        );
        let prof = choose_ca_files(&[], None, profile);
        assert_eq!(prof[0].origin, "ca_bundle of AWS profile work");
        assert!(choose_ca_files(&[], None, || None).is_empty());
    }

    #[test]
    fn names_of_a_certificate() {
        // SET { SEQ { OID 2.5.4.3, UTF8String "floe CA" } }, SET { SEQ { OID 2.5.4.10, PrintableString "Acme" } }
        let mut name = vec![
            0x31, 0x10, 0x30, 0x0e, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x07,
        ];
        name.extend_from_slice(b"floe CA");
        name.extend_from_slice(&[
            0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x13, 0x04,
        ]);
        name.extend_from_slice(b"Acme");
        assert_eq!(dn::describe(&name).as_deref(), Some("CN=floe CA, O=Acme"));
        // Cut short anywhere, or with a length past the end: no name, no panic.
        for cut in 0..name.len() {
            let _ = dn::describe(&name[..cut]);
        }
        let mut long = name.clone();
        long[1] = 0x84;
        assert_eq!(dn::describe(&long), None);
        assert_eq!(dn::describe(&[]), None);
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}
