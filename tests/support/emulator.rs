//! The emulator the integration tests talk to.
//!
//! `make test` starts one on a free port and passes its endpoint in
//! `EVENTFOLD_EMULATOR_ENDPOINT`; a bare `cargo test` starts a private one here, on a free
//! loopback port, that dies with the test process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The endpoint of the emulator, started on first use if none was given.
pub fn emulator_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| match std::env::var("EVENTFOLD_EMULATOR_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => endpoint,
            _ => start_private(),
        })
        .clone()
}

fn kind() -> String {
    std::env::var("EMULATOR").unwrap_or_else(|_| "ministack".into())
}

fn health_path() -> &'static str {
    if kind() == "moto" {
        "/moto-api/"
    } else {
        "/_ministack/health"
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("bound address").port()
}

/// Whether an HTTP GET of the health path answers 200.
pub fn healthy(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", health_path());
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

fn start_private() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let emulator = kind();
    let port = free_port();
    let mut command = match emulator.as_str() {
        "moto" => {
            // DynamoDB requests one at a time: moto is not safe for them concurrently (see the script).
            let mut c = Command::new(root.join(".venv-moto/bin/python"));
            c.arg(root.join("scripts/moto-server.py"))
                .arg(port.to_string())
                .env("MOTO_PORT", port.to_string());
            c
        }
        _ => {
            let mut c = Command::new(root.join(".venv-ministack/bin/ministack"));
            // Functions of a deployed stack inherit this environment: their SDK calls come back.
            c.env("BIND_HOST", "127.0.0.1")
                .env("GATEWAY_PORT", port.to_string())
                .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
                .env("LOG_LEVEL", "WARNING")
                .env("TMPDIR", std::env::temp_dir());
            c
        }
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    die_with_parent(&mut command);
    let (sender, receiver) = std::sync::mpsc::channel();
    // The death signal fires when the spawning *thread* ends, so spawn from one that never does.
    std::thread::Builder::new()
        .name("emulator".into())
        .spawn(move || {
            let child = command.spawn();
            let started = child.is_ok();
            sender
                .send(child.map(drop).map_err(|e| e.to_string()))
                .expect("test thread waits");
            if started {
                loop {
                    std::thread::park();
                }
            }
        })
        .expect("emulator thread");
    if let Err(error) = receiver.recv().expect("emulator thread answers") {
        panic!(
            "cannot start the {emulator} emulator ({error}); run `make emulator-deps` or set \
             EVENTFOLD_EMULATOR_ENDPOINT"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !healthy(port) {
        assert!(
            Instant::now() < deadline,
            "the {emulator} emulator did not become healthy on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    format!("http://127.0.0.1:{port}")
}

#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}
