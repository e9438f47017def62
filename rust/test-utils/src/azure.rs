//! Azurite's Blob service (Microsoft's Azure Storage emulator, npm `azurite`, installed by
//! `tests/install-deps.sh` into `~/.cache/calving/azurite`) on a free loopback port, with the
//! well-known development account `devstoreaccount1`. Killed when dropped, also on panic; it also
//! exits by itself when the test process is gone, or after 20 minutes. Its files live in a fresh
//! directory, removed on drop.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{http_request, ServerProcess};
use crate::s3::closed_port;

/// The Azurite version `tests/install-deps.sh` installs.
pub const AZURITE_VERSION: &str = "3.37.0";
/// The development account every Azurite serves.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its key, as Microsoft documents it.
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Runs Azurite's Blob service (argv: its `main.js`, then its arguments) in this Node process,
/// which exits when its parent is gone or after 20 minutes.
const AZURITE_LAUNCHER: &str = r#"
const parent = process.ppid, started = Date.now();
setInterval(() => {
  if (process.ppid !== parent || Date.now() - started > 1200e3) process.exit(0);
}, 500).unref();
const main = process.argv[1];
process.argv = [process.argv[0], main, ...process.argv.slice(2)];
require(main);
"#;

/// Creates a container (argv: port, account, key, container) with a SharedKey-signed request,
/// the way the Azure SDKs sign path-style (emulator) URLs; prints the HTTP status.
const CREATE_CONTAINER: &str = r#"
const [port, account, key, container] = process.argv.slice(1);
const crypto = require('crypto'), http = require('http');
const date = new Date().toUTCString(), version = '2021-10-04';
const path = `/${account}/${container}`;
const toSign = ['PUT', '', '', '', '', '', '', '', '', '', '', ''].join('\n') + '\n' +
  `x-ms-date:${date}\nx-ms-version:${version}\n` + `/${account}${path}\nrestype:container`;
const signature = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest('base64');
const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: `${path}?restype=container`,
  headers: { 'x-ms-date': date, 'x-ms-version': version, 'Content-Length': 0,
             Authorization: `SharedKey ${account}:${signature}` } }, (res) => {
  let body = '';
  res.on('data', (d) => body += d);
  res.on('end', () => { console.log(res.statusCode); if (res.statusCode !== 201) console.error(body); });
});
req.on('error', (e) => { console.error(e.message); process.exit(1); });
req.end();
"#;

/// A running Azurite Blob service.
pub struct AzuriteServer {
    process: ServerProcess,
    pub port: u16,
    /// `http://127.0.0.1:PORT/devstoreaccount1`: the account's Blob endpoint.
    pub endpoint: String,
}

/// Azurite's Blob service entry point under the install-deps.sh prefix.
fn azurite_main() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/calving/azurite/node_modules/azurite/dist/src/blob/main.js")
}

impl AzuriteServer {
    /// Starts Azurite and waits until it answers. Fails (never skips) when Node or Azurite is
    /// missing.
    pub fn start() -> AzuriteServer {
        let main = azurite_main();
        assert!(
            main.is_file(),
            "Azurite is not installed ({} is missing): run tests/install-deps.sh (it installs azurite@{AZURITE_VERSION} from npm)",
            main.display()
        );
        let port = closed_port();
        let dir = std::env::temp_dir().join(format!("calving-azurite-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("Azurite directory");
        let mut cmd = Command::new("node");
        cmd.arg("-e")
            .arg(AZURITE_LAUNCHER)
            .arg(&main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
            .arg(&dir)
            .args(["--skipApiVersionCheck", "--loose", "--disableTelemetry"]);
        // Any HTTP answer (an unsigned request is refused) means it listens.
        let ready = || http_request(port, "GET", &format!("/{ACCOUNT}?comp=list"), &[], "").is_ok_and(|(status, _)| status > 0);
        let process = ServerProcess::start(
            "Azurite",
            cmd,
            dir.join("azurite.log"),
            Some(dir),
            "install Node.js, then run tests/install-deps.sh",
            Duration::from_secs(60),
            ready,
        );
        AzuriteServer { process, port, endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}") }
    }

    /// What Azurite logged so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// Creates a container in the development account.
    pub fn create_container(&self, container: &str) {
        let out = Command::new("node")
            .arg("-e")
            .arg(CREATE_CONTAINER)
            .args([&self.port.to_string(), ACCOUNT, ACCOUNT_KEY, container])
            .output()
            .expect("node");
        let status = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            status.trim(),
            "201",
            "create container {container}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }

    /// The storage keys (`adls.*`, Iceberg Java's names) that reach the development account at
    /// `endpoint` (this server's Blob endpoint) with its shared key.
    pub fn adls_props(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("adls.auth.shared-key.account.name", ACCOUNT.into()),
            ("adls.auth.shared-key.account.key", ACCOUNT_KEY.into()),
            ("adls.connection-string.devstoreaccount1.dfs.core.windows.net", endpoint.to_string()),
        ]
    }

    /// The same as one connection string (pyiceberg's `adls.connection-string`), the form Azure
    /// tools print for Azurite.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={}/;",
            self.endpoint
        )
    }
}
