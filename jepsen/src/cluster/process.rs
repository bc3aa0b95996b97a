//! One `waymark server` process inside its node's namespace: start, SIGTERM (a planned
//! stop), SIGKILL, SIGSTOP, SIGCONT, restart on the same data directory.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How to start one node's server; kept so it can be restarted identically.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    pub namespace: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Appended to across restarts, so one file tells the node's whole story.
    pub log_path: PathBuf,
}

/// A running (or stopped) server.
#[derive(Debug)]
pub struct ServerProcess {
    command: ServerCommand,
    child: Option<Child>,
    paused: bool,
    /// Sent SIGTERM: its exit is expected (if clean), not a crash.
    stopping: bool,
}

impl ServerProcess {
    pub fn start(command: ServerCommand) -> anyhow::Result<Self> {
        let mut process = Self {
            command,
            child: None,
            paused: false,
            stopping: false,
        };
        process.spawn()?;
        Ok(process)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let c = &self.command;
        let log = open_log(c)?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        // `ip netns exec` execs the program after entering the namespace, so the child's
        // pid is the server's own and signals reach it directly.
        let child = Command::new("ip")
            .args(["netns", "exec", &c.namespace])
            .arg(&c.program)
            .args(&c.args)
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {} in {}", c.program.display(), c.namespace))?;
        self.child = Some(child);
        self.paused = false;
        self.stopping = false;
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// How it exited, if it died without being killed: a crash the run must report.
    /// A server asked to stop with SIGTERM must exit 0; any other exit is a crash.
    pub fn exited_on_its_own(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        let expected = std::mem::take(&mut self.stopping) && status.success();
        (!expected).then_some(status)
    }

    /// Asks it to stop (SIGTERM): it hands over leadership, drains and exits.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGTERM)?;
        self.stopping = true;
        Ok(())
    }

    /// Waits up to `within` for a server sent SIGTERM to exit. `Some` with a message
    /// when it did not exit cleanly in time (then it is killed): a crash to report.
    pub fn wait_stopped(&mut self, within: Duration) -> Option<String> {
        if !self.stopping {
            return None;
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match self.exited_on_its_own() {
                Some(status) => return Some(format!("exited with {status} after SIGTERM")),
                None if self.child.is_none() => return None,
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        self.kill();
        Some(format!("did not exit within {within:?} of SIGTERM"))
    }

    pub fn log_path(&self) -> &std::path::Path {
        &self.command.log_path
    }

    /// SIGKILL and reap. A no-op if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(pid_of(&child), Signal::SIGKILL);
            let _ = child.wait();
        }
        self.paused = false;
        self.stopping = false;
    }

    /// Starts it again on the same data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the server is not running")?;
        kill(pid_of(child), signal).with_context(|| format!("sending {signal} to the server"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32)
}

fn open_log(c: &ServerCommand) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&c.log_path)
        .with_context(|| format!("opening {}", c.log_path.display()))
}
