//! The control socket of a running `vlsp up` (`/run/vlsp/NAME/control.sock`):
//! how `vlsp fault` reaches the process that owns the testbed. The nodes
//! are threads (or children) of that process, so only it can halt and
//! restart them; doing the kernel side there too keeps one writer of the
//! fault state. One JSON line in (a [`Fault`]), one JSON line out
//! ([`ControlReply`]), then the connection closes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
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

/// Serves the control socket of `run` on a thread of its own for as long
/// as the process lives.
pub fn serve(run: &RunDir, tb: Shared) -> Result<()> {
    let path = control_socket(run);
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::thread::Builder::new()
        .name("vlsp-control".into())
        .spawn(move || {
            for s in l.incoming().flatten() {
                let _ = handle(s, &tb);
            }
        })?;
    Ok(())
}

fn handle(s: UnixStream, tb: &Shared) -> Result<()> {
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Fault>(&line) {
        Err(e) => ControlReply::Error(format!("bad request {:?}: {e}", line.trim())),
        Ok(f) => match tb.lock().map(|mut g| g.as_mut().map(|t| t.fault(&f))) {
            Ok(Some(Ok(st))) => ControlReply::Ok(st),
            Ok(Some(Err(e))) => ControlReply::Error(format!("{f}: {e:#}")),
            Ok(None) => ControlReply::Error("the topology is going down".into()),
            Err(_) => ControlReply::Error("the testbed lock is poisoned".into()),
        },
    };
    let mut w = &s;
    writeln!(w, "{}", serde_json::to_string(&reply)?)?;
    Ok(())
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
