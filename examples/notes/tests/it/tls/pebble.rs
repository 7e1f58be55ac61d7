//! A private ACME CA on loopback for the ACME tests: Debian's `pebble` and
//! `pebble-challtestsrv`, and the acme-mode server launched against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::pki::make_pki;
use crate::support::https::{https_get, trusting};
use crate::support::procs::wait_until;
use crate::support::tools::require_tool;
use crate::support::{Launch, free_port};

/// The name the ACME tests' certificates are for (pebble's DNS resolves it to 127.0.0.1).
pub const DOMAIN: &str = "burrow.test";

/// A child process killed (by its own PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16, what: &str) {
    wait_until(Duration::from_secs(30), &format!("{what} listens on port {port}"), |state| {
        let connected = std::net::TcpStream::connect(("127.0.0.1", port));
        connected.map_err(|e| *state = e.to_string()).ok().map(drop)
    });
}

/// A private ACME CA on loopback: `pebble` with its own API certificate (generated here:
/// the package ships none), `pebble-challtestsrv` as its DNS server resolving every name
/// to 127.0.0.1, and validation (HTTP-01) against `http_port`.
pub struct Pebble {
    /// `None` while stopped ([`Pebble::stop`]).
    pebble: Option<Proc>,
    _dns: Proc,
    dir: PathBuf,
    config_file: PathBuf,
    dns_port: u16,
    pub api_port: u16,
    management_port: u16,
    /// CA of pebble's API certificate: what the server gets as --tls-acme-ca-root.
    api_ca: PathBuf,
}

impl Pebble {
    pub fn start(dir: &Path, http_port: u16, validity_s: Option<u64>) -> Pebble {
        let mut extra = serde_json::json!({});
        if let Some(v) = validity_s {
            extra["certificateValidityPeriod"] = v.into();
        }
        Pebble::start_with(dir, http_port, extra)
    }

    /// Like [`Pebble::start`], with `extra` merged into pebble's configuration object.
    pub fn start_with(dir: &Path, http_port: u16, extra: serde_json::Value) -> Pebble {
        require_tool("pebble", "pebble");
        require_tool("pebble-challtestsrv", "pebble");
        let dir = dir.join("pebble");
        std::fs::create_dir_all(&dir).unwrap();
        let api = make_pki(&dir, "api", &["localhost", "127.0.0.1"]);
        let leaf_only = dir.join("api-cert.pem");
        let chain = std::fs::read_to_string(&api.chain).unwrap();
        let end = "-----END CERTIFICATE-----";
        std::fs::write(&leaf_only, &chain[..chain.find(end).unwrap() + end.len()]).unwrap();
        let (api_port, management_port, dns_port, chall_mgmt, tls_port) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{api_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": leaf_only, "privateKey": api.key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        for (key, value) in extra.as_object().expect("a JSON object") {
            config["pebble"][key] = value.clone();
        }
        let config_file = dir.join("pebble-config.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{chall_mgmt}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let dns = Proc(dns);
        wait_port(chall_mgmt, "pebble-challtestsrv");
        let mut pebble = Pebble {
            pebble: None,
            _dns: dns,
            dir,
            config_file,
            dns_port,
            api_port,
            management_port,
            api_ca: api.ca,
        };
        pebble.restart();
        pebble
    }

    /// Starts pebble (again, after [`Pebble::stop`]): same configuration and ports, but a
    /// new issuing root and no memory of accounts, orders or certificates.
    pub fn restart(&mut self) {
        assert!(self.pebble.is_none(), "pebble is running");
        // Appended to: `issued` counts across restarts.
        let log = |name: &str| {
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(name)).unwrap()
        };
        let pebble = Command::new("pebble")
            .args([
                "-config",
                self.config_file.to_str().unwrap(),
                "-dnsserver",
                &format!("127.0.0.1:{}", self.dns_port),
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        self.pebble = Some(Proc(pebble));
        wait_port(self.api_port, "pebble");
        wait_port(self.management_port, "pebble management");
    }

    /// Kills pebble (its API port refuses connections until [`Pebble::restart`]).
    pub fn stop(&mut self) {
        drop(self.pebble.take().expect("pebble is running"));
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.api_port)
    }

    /// The root pebble issues under (from its management endpoint), as a PEM file.
    pub async fn issuing_root(&self) -> PathBuf {
        let config = trusting(&self.api_ca, &["http/1.1"]);
        let r = https_get(self.management_port, "127.0.0.1", config, "/roots/0")
            .await
            .expect("GET pebble /roots/0");
        assert_eq!(r.status, 200, "{}", r.body);
        let file = self.dir.join("issuing-root.pem");
        std::fs::write(&file, r.body).unwrap();
        file
    }

    /// How many certificates pebble has issued (from its log).
    pub fn issued(&self) -> usize {
        std::fs::read_to_string(self.dir.join("pebble.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Issued certificate serial"))
            .count()
    }
}

/// An acme-mode server for `DOMAIN` against `pebble`.
pub fn acme_launch(dir: &Path, pebble: &Pebble, http_port: u16, https_port: u16) -> Launch {
    Launch::new(dir)
        .args([
            "--host",
            DOMAIN,
            "--tls-email",
            "ops@burrow.test",
            "--tls-acme-directory",
            &pebble.directory(),
            "--tls-acme-ca-root",
        ])
        .arg(&pebble.api_ca)
        .args([
            "--tls-http-port",
            &http_port.to_string(),
            "--tls-https-port",
            &https_port.to_string(),
            "--tls-cert-dir",
        ])
        .arg(dir.join("certs"))
        .arg("--database-dsn")
        .arg(dir.join("app.db"))
}
