//! HTTPS to an object store behind a private authority: a TLS terminator
//! (`tests/servers/tls_proxy.py`) in front of the Garage cluster, with a CA and certificates made
//! by openssl for each test. Trust through `--cacert` and `AWS_CA_BUNDLE`, mutual TLS, and the
//! one-line message of each way a connection fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::*;
use crate::s3::{garage, make_source, Server};

/// A private authority and certificates it issued, in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str], cwd: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// An authority named `name` (files `<tag>-ca.pem`, `<tag>-ca.key`).
    fn new() -> Self {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.authority("ca", "floe test CA");
        pki
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn authority(&self, tag: &str, name: &str) {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{tag}.key"),
                "-out",
                &format!("{tag}.pem"),
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            self.dir.path(),
        );
    }

    /// A certificate `<tag>.pem` (key `<tag>.key`) issued by authority `ca` for `sans`
    /// (`DNS:...`, `IP:...`), for a server or (`client`) a client.
    fn issue(&self, ca: &str, tag: &str, cn: &str, sans: &str, client: bool) {
        let usage = if client { "clientAuth" } else { "serverAuth" };
        let ext = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage={usage}\n{}",
            if sans.is_empty() {
                String::new()
            } else {
                format!("subjectAltName={sans}\n")
            }
        );
        std::fs::write(self.path(&format!("{tag}.ext")), ext).unwrap();
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{tag}.key"),
                "-out",
                &format!("{tag}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
            self.dir.path(),
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &format!("{tag}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{tag}.pem"),
                "-extfile",
                &format!("{tag}.ext"),
            ],
            self.dir.path(),
        );
    }

    /// Certificate and key of `tag` in one PEM file, as `--tls-client-cert` takes them.
    fn bundle(&self, tag: &str) -> PathBuf {
        let mut pem = std::fs::read(self.path(&format!("{tag}.pem"))).unwrap();
        pem.extend(std::fs::read(self.path(&format!("{tag}.key"))).unwrap());
        let out = self.path(&format!("{tag}-bundle.pem"));
        std::fs::write(&out, pem).unwrap();
        out
    }
}

/// `tests/servers/tls_proxy.py` in front of `upstream`, serving certificate `tag` of `pki`.
struct Terminator {
    child: Child,
    port: u16,
}

impl Terminator {
    fn start(upstream: &str, pki: &Pki, tag: &str, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/tls_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(upstream)
            .arg(pki.path(&format!("{tag}.pem")))
            .arg(pki.path(&format!("{tag}.key")))
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the TLS terminator (python3)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the terminator prints its port");
        Terminator { child, port }
    }

    /// The repository location `s3:https://HOST:PORT/bucket/...` for a new repository.
    fn url(&self, host: &str, s: &Server, test: &str) -> String {
        format!(
            "s3:https://{host}:{}/{}/{test}-{}",
            self.port,
            s.bucket,
            crate::s3::unique()
        )
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An environment for `url` with nothing trusted but the system's authorities, one attempt
/// per request (a refused certificate is never retried anyway).
fn tls_env(s: &Server, url: &str) -> Env {
    let mut env = s.env(url);
    env.vars.push(("FLOE_S3_ATTEMPTS".into(), "1".into()));
    env
}

fn run_unset(env: &Env, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("FLOE_CACERT")
        .args(args)
        .output()
        .expect("run floe")
}

fn fails_with(out: &std::process::Output, wanted: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for w in wanted {
        assert!(err.contains(w), "expected {w:?} in: {err}");
    }
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn https_with_a_private_authority_backs_up_restores_and_checks() {
    let Some(s) = garage("https_with_a_private_authority_backs_up_restores_and_checks") else {
        return;
    };
    let pki = Pki::new();
    pki.issue(
        "ca",
        "server",
        "floe test server",
        "DNS:localhost,IP:127.0.0.1",
        false,
    );
    let tls = Terminator::start(&s.endpoint, &pki, "server", &[]);
    let env = tls_env(&s, &tls.url("127.0.0.1", &s, "https"));
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();

    // Not trusted: one line naming the certificate, its issuer and the ways to trust it.
    let out = run_unset(&env, &["init"]);
    fails_with(
        &out,
        &[
            "the certificate of 127.0.0.1 (CN=floe test server) is issued by CN=floe test CA",
            "does not trust",
            "--cacert FILE",
            "AWS_CA_BUNDLE",
        ],
    );
    assert!(
        !stderr(&out).contains("DispatchFailure"),
        "{}",
        stderr(&out)
    );

    // --cacert: init, backup, restore (byte-exact) and check, all through HTTPS.
    let with_ca = |args: &[&str]| {
        let mut all = vec!["--cacert", ca];
        all.extend_from_slice(args);
        let out = run_unset(&env, &all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    with_ca(&["init"]);
    let src = make_source(&env, 3 << 20);
    with_ca(&["backup", src.to_str().unwrap()]);
    let target = env.path("out");
    with_ca(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src), false);
    assert!(with_ca(&["check", "--read-data"]).contains(" 0 error(s)"));

    // AWS_CA_BUNDLE, the AWS tools' variable, serves the same.
    let out = env
        .cmd()
        .env("AWS_CA_BUNDLE", ca)
        .env_remove("FLOE_CACERT")
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().map(Vec::len), Some(1), "{snaps}");

    // With -v the layers under the message follow it.
    let out = run_unset(&env, &["-v", "snapshots"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines().count() > 1 && err.contains("caused by:"),
        "{err}"
    );
}

#[test]
fn the_ways_a_tls_connection_fails_each_have_one_clear_line() {
    let Some(s) = garage("the_ways_a_tls_connection_fails_each_have_one_clear_line") else {
        return;
    };
    let pki = Pki::new();
    pki.issue("ca", "other", "other", "DNS:storage.example.com", false);
    pki.issue("ca", "server", "floe test server", "IP:127.0.0.1", false);
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();

    // A certificate for another name.
    let other = Terminator::start(&s.endpoint, &pki, "other", &[]);
    let env = tls_env(&s, &other.url("127.0.0.1", &s, "name"));
    fails_with(
        &run_unset(&env, &["--cacert", ca, "snapshots"]),
        &["the certificate of 127.0.0.1 is for storage.example.com, not 127.0.0.1"],
    );

    // A store that offers only TLS 1.0 and 1.1.
    let old = Terminator::start(&s.endpoint, &pki, "server", &["--max-tls", "1.1"]);
    let env = tls_env(&s, &old.url("127.0.0.1", &s, "old"));
    fails_with(
        &run_unset(&env, &["--cacert", ca, "snapshots"]),
        &[&format!(
            "127.0.0.1:{} offers no TLS version floe speaks (1.2 or 1.3)",
            old.port
        )],
    );

    // https:// to a server that speaks plain HTTP.
    let plain = s.endpoint.replace("http://", "https://");
    let env = tls_env(&s, &format!("s3:{plain}/{}/plain", s.bucket));
    fails_with(
        &run_unset(&env, &["snapshots"]),
        &["does not answer in TLS: is the endpoint http:// rather than https://?"],
    );

    // --insecure-tls gets through without the authority, and warns.
    let server = Terminator::start(&s.endpoint, &pki, "server", &[]);
    let env = tls_env(&s, &server.url("127.0.0.1", &s, "insecure"));
    let out = run_unset(&env, &["--insecure-tls", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: --insecure-tls: the store's certificate is not checked"),
        "{}",
        stderr(&out)
    );

    // A --cacert file that holds no certificate is named, before anything is sent.
    std::fs::write(pki.path("typo.pem"), "not a certificate\n").unwrap();
    let typo = pki.path("typo.pem");
    fails_with(
        &run_unset(&env, &["--cacert", typo.to_str().unwrap(), "snapshots"]),
        &["--cacert", "typo.pem: holds no certificate"],
    );
}

#[test]
fn mutual_tls_with_a_client_certificate() {
    let Some(s) = garage("mutual_tls_with_a_client_certificate") else {
        return;
    };
    let pki = Pki::new();
    pki.issue("ca", "server", "floe test server", "IP:127.0.0.1", false);
    pki.issue("ca", "client", "floe client", "", true);
    pki.authority("stranger-ca", "someone else");
    pki.issue("stranger-ca", "stranger", "stranger", "", true);
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let tls = Terminator::start(
        &s.endpoint,
        &pki,
        "server",
        &["--client-ca", pki.path("ca.pem").to_str().unwrap()],
    );
    let env = tls_env(&s, &tls.url("127.0.0.1", &s, "mtls"));

    fails_with(
        &run_unset(&env, &["--cacert", ca, "init"]),
        &["asks for a client certificate: give one with --tls-client-cert FILE"],
    );
    let stranger = pki.bundle("stranger");
    fails_with(
        &run_unset(
            &env,
            &[
                "--cacert",
                ca,
                "--tls-client-cert",
                stranger.to_str().unwrap(),
                "init",
            ],
        ),
        &["refused the client certificate of --tls-client-cert"],
    );
    let client = pki.bundle("client");
    let client = client.to_str().unwrap();
    let src = make_source(&env, 1 << 20);
    for args in [
        vec!["init"],
        vec!["backup", src.to_str().unwrap()],
        vec!["check"],
    ] {
        let mut all = vec!["--cacert", ca, "--tls-client-cert", client];
        all.extend(args.iter().copied());
        let out = run_unset(&env, &all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    // A file with the certificate but not its key is refused before connecting.
    let out = run_unset(
        &env,
        &[
            "--cacert",
            ca,
            "--tls-client-cert",
            pki.path("client.pem").to_str().unwrap(),
            "snapshots",
        ],
    );
    fails_with(&out, &["--tls-client-cert", "holds no private key"]);
}

#[test]
fn unreachable_stores_say_what_happened() {
    let mut env = Env::new();
    env.vars.extend([
        ("FLOE_S3_REGION".into(), "test".into()),
        ("FLOE_S3_ATTEMPTS".into(), "1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
    ]);
    // Port 9 (discard) has no listener on the test machines.
    env.repo = "s3:http://127.0.0.1:9/bucket/prefix".into();
    fails_with(
        &env.run(&["snapshots"]),
        &["connection refused by 127.0.0.1:9: is the object store running there"],
    );
    // A name that cannot resolve (.invalid never does).
    env.repo = "s3:https://floe-test.invalid/bucket/prefix".into();
    fails_with(
        &env.run(&["snapshots"]),
        &["cannot resolve the host name \"floe-test.invalid\""],
    );
    // A server that accepts the connection and never answers: the attempt's limit, named.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    env.repo = format!("s3:http://127.0.0.1:{port}/bucket/prefix").into();
    fails_with(
        &env.run(&["--s3-timeout", "2s", "snapshots"]),
        &["no complete answer within 2s (--s3-timeout), 1 attempt"],
    );
    // Over https the same silence stalls the handshake: the connect timeout, named.
    env.repo = format!("s3:https://127.0.0.1:{port}/bucket/prefix").into();
    fails_with(
        &env.run(&["snapshots"]),
        &[&format!(
            "no connection to 127.0.0.1:{port} within 10s (the connect timeout)"
        )],
    );
}
