//! A simulator's firmware as a child process (`[sim] firmware` in the manifest): resq starts the
//! command with `--port pty --link PATH` appended, in the bundle's folder, waits until the
//! pseudo-terminal appears at PATH, talks to it over the link like to any robot, and stops the
//! process when the run ends. The process's output goes to a log file; if it exits before
//! serving, the error quotes the log's end. A simulated ROS 2 robot is started the same way with
//! `--router ENDPOINT --ready PATH` appended ([`FirmwareProcess::start_ros2`]): PATH appears once
//! it serves its topics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Fixable;

/// A running firmware process and the stable path of its pseudo-terminal.
pub struct FirmwareProcess {
    child: Child,
    /// The serial device to open (a symlink to the pseudo-terminal); for a ROS 2 robot, the file
    /// it creates once serving.
    pub port: PathBuf,
    /// Where the process's stdout and stderr go.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FirmwareProcess {
    /// Starts `command` (a shell command line) in `cwd`, logging to `log`, and waits up to
    /// `within` for its pseudo-terminal.
    pub fn start(
        command: &str,
        cwd: &Path,
        log: &Path,
        within: Duration,
    ) -> Result<FirmwareProcess, Fixable> {
        Self::spawn(command, |ready| format!("--port pty --link '{}'", ready.display()), cwd, log, within)
    }

    /// Starts a simulated ROS 2 robot: `command --router ROUTER --seed SEED --ready PATH`, and
    /// waits up to `within` for PATH (it serves its topics). A reset service carries no seed:
    /// the robot's episodes follow from the first.
    pub fn start_ros2(
        command: &str,
        router: &str,
        seed: u64,
        cwd: &Path,
        log: &Path,
        within: Duration,
    ) -> Result<FirmwareProcess, Fixable> {
        let args = |ready: &Path| format!("--router '{router}' --seed {seed} --ready '{}'", ready.display());
        Self::spawn(command, args, cwd, log, within)
    }

    /// Starts `command` with the arguments `args(ready path)` appended; waits for the path.
    fn spawn(
        command: &str,
        args: impl Fn(&Path) -> String,
        cwd: &Path,
        log: &Path,
        within: Duration,
    ) -> Result<FirmwareProcess, Fixable> {
        let io = |what: String| {
            move |e: std::io::Error| {
                Fixable::new(
                    format!("{what}: {e}"),
                    "check that the folder is writable and the disk not full",
                )
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("resq-fw-")
            .tempdir()
            .map_err(io("cannot make a temporary folder".into()))?;
        let port = dir.path().join("tty");
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("cannot create {}", parent.display())))?;
        }
        let out = std::fs::File::create(log).map_err(io(format!("cannot create {}", log.display())))?;
        let line = format!("exec {command} {}", args(&port));
        let child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(io(format!("cannot write {}", log.display())))?)
            .stderr(out)
            .spawn()
            .map_err(|e| {
                Fixable::new(
                    format!("cannot start the firmware command `{command}`: {e}"),
                    "check `[sim] firmware` in the manifest; the command runs under `sh -c` in the bundle's folder",
                )
            })?;
        let mut fw = FirmwareProcess { child, port, log: log.to_path_buf(), _dir: dir };
        let until = Instant::now() + within;
        while !fw.port.exists() {
            if let Some(status) = fw.child.try_wait().map_err(io(format!("cannot wait for `{command}`")))? {
                return Err(Fixable::new(
                    format!(
                        "the firmware command `{command}` exited ({status}) before serving a port; its log ({}) ends:\n{}",
                        fw.log.display(),
                        tail(&fw.log, 12)
                    ),
                    "run the command by hand to see why; `resq-firmware` comes from `pip install ./reference-firmware` (docs/manifest.md, \"A new robot, step by step\")",
                ));
            }
            if Instant::now() >= until {
                return Err(Fixable::new(
                    format!(
                        "the firmware command `{command}` served no port within {:.0} s; its log ({}) ends:\n{}",
                        within.as_secs_f32(),
                        fw.log.display(),
                        tail(&fw.log, 12)
                    ),
                    "run the command by hand: it must serve a pseudo-terminal at the path after `--link` (a ROS 2 robot: create the file after `--ready`)",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(fw)
    }
}

impl Drop for FirmwareProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a text file (for error messages).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
