//! The control socket of a running `vlsp up` (`/run/vlsp/NAME/control.sock`):
//! how `vlsp fault` reaches the process that owns the testbed. The nodes
//! are threads (or children) of that process, so only it can halt and
//! restart them; doing the kernel side there too keeps one writer of the
//! fault state. One JSON line in (a [`Fault`]), one JSON line out
//! ([`ControlReply`]), then the connection closes. It is an input path:
//! garbage, oversized lines, silent clients and floods of clients get an
//! error naming what was wrong, and the daemon stays up.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::Testbed;
use crate::model::paths::RunDir;
use crate::topology::faults::{Fault, FaultState};

pub fn control_socket(run: &RunDir) -> PathBuf {
    run.path().join("control.sock")
}

/// The answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlReply {
    /// Applied; the faults now in force.
    Ok(FaultState),
    Error(String),
}

/// The testbed a control socket serves: `None` once it is going down.
pub type Shared = Arc<Mutex<Option<Testbed>>>;

/// The longest request line read; a fault request is well under 200 bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Connections served at once; more are answered "busy" and closed.
pub const MAX_CLIENTS: usize = 32;

/// How long a client may take to send its line before it is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the control socket of `run` on a thread of its own for as long
/// as the process lives. Each connection gets a thread (at most
/// [`MAX_CLIENTS`]), so a client that never sends holds up no other; the
/// faults themselves apply one at a time under the testbed's lock.
pub fn serve(run: &RunDir, tb: Shared) -> Result<()> {
    let path = control_socket(run);
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("vlsp-control".into())
        .spawn(move || {
            for s in l.incoming().flatten() {
                if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                    busy.fetch_sub(1, Ordering::SeqCst);
                    let _ = reply(
                        &s,
                        &ControlReply::Error(format!(
                            "the control socket serves {MAX_CLIENTS} clients at once: try again"
                        )),
                    );
                    continue;
                }
                let (tb, busy) = (tb.clone(), busy.clone());
                let spawned = std::thread::Builder::new()
                    .name("vlsp-control-client".into())
                    .spawn(move || {
                        let _ = handle(s, &tb);
                        busy.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    // The closure (and its decrement) never ran.
                    tracing::warn!("control socket: cannot start a client thread");
                }
            }
        })?;
    Ok(())
}

/// Reads one request line of at most [`MAX_REQUEST`] bytes; the error is
/// the reply to send.
fn read_request(s: &UnixStream) -> std::result::Result<String, String> {
    s.set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| format!("control socket: {e}"))?;
    let mut buf = Vec::new();
    let r = BufReader::new(s.take(MAX_REQUEST as u64 + 1)).read_until(b'\n', &mut buf);
    if let Err(e) = r {
        return Err(format!(
            "no request line within {} s ({e}): send one JSON line, e.g. {EXAMPLE}",
            READ_TIMEOUT.as_secs()
        ));
    }
    if buf.len() > MAX_REQUEST {
        return Err(format!(
            "request longer than {MAX_REQUEST} bytes refused: send one JSON line, e.g. {EXAMPLE}"
        ));
    }
    String::from_utf8(buf)
        .map_err(|_| format!("request is not UTF-8: send one JSON line, e.g. {EXAMPLE}"))
}

/// A request as the daemon expects it.
const EXAMPLE: &str = r#"{"action":"link-down","link":"r1-r2"}"#;

/// The reply to request `line`: the fault applied, or why not.
pub fn answer(line: &str, tb: &Shared) -> ControlReply {
    let f = match serde_json::from_str::<Fault>(line) {
        Ok(f) => f,
        Err(e) => {
            let shown: String = line.trim().chars().take(120).collect();
            return ControlReply::Error(format!(
                "bad request {shown:?}: {e}; send one JSON line, e.g. {EXAMPLE} (actions: link-down, link-up, node-stop, node-start)"
            ));
        }
    };
    // A fault that panicked poisons the lock; the state it left is the
    // kernel's and faults.json's, so the next request still goes ahead.
    let mut g = tb.lock().unwrap_or_else(|p| p.into_inner());
    match g.as_mut().map(|t| t.fault(&f)) {
        Some(Ok(st)) => ControlReply::Ok(st),
        Some(Err(e)) => ControlReply::Error(format!("{f}: {e:#}")),
        None => ControlReply::Error("the topology is going down".into()),
    }
}

fn reply(s: &UnixStream, r: &ControlReply) -> Result<()> {
    let mut w = s;
    writeln!(w, "{}", serde_json::to_string(r)?)?;
    Ok(())
}

fn handle(s: UnixStream, tb: &Shared) -> Result<()> {
    let r = match read_request(&s) {
        Ok(line) => answer(&line, tb),
        Err(e) => {
            let r = reply(&s, &ControlReply::Error(e));
            // Read what is left of an oversized line (bounded), so the
            // client sees the reply instead of a reset.
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = std::io::copy(&mut (&s).take(64 << 20), &mut std::io::sink());
            return r;
        }
    };
    reply(&s, &r)
}

/// Sends fault `f` to the `vlsp up` of `run` and waits for it to apply it.
pub fn send(run: &RunDir, f: &Fault) -> Result<FaultState> {
    let path = control_socket(run);
    let name = run.name();
    let s = UnixStream::connect(&path).with_context(|| {
        format!(
            "{name} has no running `vlsp up` to apply faults ({}); bring it up with `vlsp up FILE --detach`",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut w = &s;
    writeln!(w, "{}", serde_json::to_string(f)?)?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    match serde_json::from_str(&line)
        .with_context(|| format!("unreadable reply from {name}: {line:?}"))?
    {
        ControlReply::Ok(st) => Ok(st),
        ControlReply::Error(e) => bail!("{name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::paths::TopoName;
    use std::time::Instant;

    /// A control socket with no testbed behind it (as while going down):
    /// every well-formed fault is answered "going down", so what the tests
    /// see is the socket's own handling of its input.
    fn served(tag: &str) -> (PathBuf, std::path::PathBuf) {
        let root = std::env::temp_dir().join(format!("vlsp-ctl-{tag}-{}", std::process::id()));
        let run = RunDir::under(&root, &TopoName::new("t").unwrap());
        std::fs::create_dir_all(run.path()).unwrap();
        serve(&run, Arc::new(Mutex::new(None))).unwrap();
        (control_socket(&run), root)
    }

    /// Sends `bytes` (on a thread: the daemon may answer before it read
    /// them all) and returns the reply line.
    fn ask(path: &std::path::Path, bytes: Vec<u8>) -> String {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let mut w = &w;
            let _ = w.write_all(&bytes);
        });
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let _ = writer.join();
        line
    }

    fn error_of(line: &str) -> String {
        match serde_json::from_str::<ControlReply>(line).unwrap() {
            ControlReply::Error(e) => e,
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn garbage_unknown_ops_and_huge_lines_get_an_error_naming_them() {
        let (p, root) = served("bad");
        let e = error_of(&ask(&p, b"hello there\n".to_vec()));
        assert!(e.contains("bad request \"hello there\""), "{e}");
        let e = error_of(&ask(
            &p,
            b"{\"action\":\"explode\",\"link\":\"a-b\"}\n".to_vec(),
        ));
        assert!(e.contains("unknown variant `explode`"), "{e}");
        let e = error_of(&ask(&p, vec![0xff, 0xfe, b'\n']));
        assert!(e.contains("not UTF-8"), "{e}");
        let mut huge = vec![b'x'; 10 << 20];
        huge.push(b'\n');
        let e = error_of(&ask(&p, huge));
        assert!(e.contains("longer than 65536 bytes"), "{e}");
        // Still serving, and a good request still goes through.
        let e = error_of(&ask(
            &p,
            b"{\"action\":\"link-down\",\"link\":\"r1-r2\"}\n".to_vec(),
        ));
        assert_eq!(e, "the topology is going down");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_silent_client_holds_up_no_one_and_32_clients_are_all_answered() {
        let (p, root) = served("many");
        let _silent = UnixStream::connect(&p).unwrap();
        let t0 = Instant::now();
        let e = error_of(&ask(
            &p,
            b"{\"action\":\"node-stop\",\"node\":\"r1\"}\n".to_vec(),
        ));
        assert_eq!(e, "the topology is going down");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        drop(_silent);
        let clients: Vec<_> = (0..MAX_CLIENTS)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let req = format!("{{\"action\":\"node-start\",\"node\":\"r{i}\"}}\n");
                    error_of(&ask(&p, req.into_bytes()))
                })
            })
            .collect();
        for c in clients {
            let e = c.join().unwrap();
            // Either served, or told to come back: never silence.
            assert!(
                e == "the topology is going down" || e.contains("try again"),
                "{e}"
            );
        }
        let e = error_of(&ask(&p, b"\n".to_vec()));
        assert!(e.contains("bad request"), "{e}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
