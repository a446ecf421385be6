//! A process sandbox for model-written programs: the code reward runs them here.
//!
//! Each run gets a fresh empty working directory, an empty environment, its own session (so the
//! whole process group is killed), and — set in the child before `exec` — resource limits
//! (address space, CPU seconds, file size, open files, no core dumps) and a new network
//! namespace with nothing in it (not even a loopback that is up), so no connection leaves the
//! sandbox, to the host or anywhere else. The parent enforces a wall-clock limit and caps the
//! captured output. Whatever the program does — loops, allocates, crashes, forks — the caller
//! gets a [`RunResult`], never a panic.
//!
//! Network isolation needs `unshare(CLONE_NEWNET)`: as root directly, otherwise inside a new
//! user namespace. Where neither is allowed the sandbox refuses to run anything
//! ([`Sandbox::check`]) rather than run programs with the network.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock limit.
    pub wall: Duration,
    /// CPU-time limit (seconds).
    pub cpu_seconds: u64,
    /// Address-space limit (bytes).
    pub memory_bytes: u64,
    /// Largest file the program may write (bytes).
    pub file_bytes: u64,
    /// Captured stdout and stderr are cut at this many bytes each.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall: Duration::from_secs(5),
            cpu_seconds: 5,
            memory_bytes: 512 << 20,
            file_bytes: 1 << 20,
            output_bytes: 64 << 10,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status code.
    Code(i32),
    /// Killed by this signal (e.g. SIGSEGV).
    Signal(i32),
    /// Stopped at the CPU-time limit (SIGXCPU). A busy loop reaches this and the wall-clock limit
    /// at about the same moment, so callers should treat both as "out of time".
    CpuLimit,
    /// Killed at the wall-clock limit.
    TimedOut,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
}

impl RunResult {
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }
}

/// A program runner: an interpreter (or any executable) and the limits its runs get.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The executable, resolved to an absolute path once.
    pub program: PathBuf,
    /// Arguments before the script file name.
    pub args: Vec<String>,
    pub limits: Limits,
}

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Isolate the network of the calling (child) process: a new network namespace, inside a new
/// user namespace when not privileged.
fn isolate_network() -> std::io::Result<()> {
    // SAFETY: unshare only changes the calling process's namespaces.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) == 0 {
            return Ok(());
        }
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
            return Ok(());
        }
    }
    Err(std::io::Error::last_os_error())
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> std::io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: hard as libc::rlim_t };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Sandbox {
    /// A Python 3 sandbox: the interpreter `python3` resolves to (through shims such as pyenv's),
    /// run isolated (`-I`: no user site, no environment variables, no script directory on the path).
    pub fn python(limits: Limits) -> Result<Self> {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .context("the code sandbox needs `python3` on the PATH")?;
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || exe.is_empty() {
            bail!("python3 did not report its executable: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(Self { program: PathBuf::from(exe), args: vec!["-I".into(), "-S".into()], limits })
    }

    /// Check that programs can be isolated here (a run of `true` semantics: the interpreter
    /// starts in the sandbox and exits 0).
    pub fn check(&self) -> Result<()> {
        let r = self.run("", "").context("the code sandbox cannot start programs")?;
        if !r.success() {
            bail!("the code sandbox's probe run failed ({:?}): {}", r.exit, r.stderr);
        }
        Ok(())
    }

    /// Run `source` (written to `main` in a fresh directory) with `stdin`. Errors only when the
    /// sandbox itself cannot be set up (no directory, no network isolation, no interpreter);
    /// anything the program does is in the [`RunResult`].
    pub fn run(&self, source: &str, stdin: &str) -> Result<RunResult> {
        let dir = std::env::temp_dir().join(format!(
            "oxrl-sandbox-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let result = self.run_in(&dir, source, stdin);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn run_in(&self, dir: &Path, source: &str, stdin: &str) -> Result<RunResult> {
        std::fs::write(dir.join("main"), source)?;
        let lim = self.limits.clone();
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .arg("main")
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                set_limit(libc::RLIMIT_AS, lim.memory_bytes, lim.memory_bytes)?;
                set_limit(libc::RLIMIT_CPU, lim.cpu_seconds, lim.cpu_seconds + 1)?;
                set_limit(libc::RLIMIT_FSIZE, lim.file_bytes, lim.file_bytes)?;
                set_limit(libc::RLIMIT_NOFILE, 64, 64)?;
                set_limit(libc::RLIMIT_CORE, 0, 0)?;
                isolate_network()
            });
        }
        let start = Instant::now();
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "starting {} in the sandbox (it needs network namespaces: unshare(CLONE_NEWNET))",
                self.program.display()
            )
        })?;
        let pid = child.id() as i32;
        let reader = |mut r: Box<dyn Read + Send>, cap: usize| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let room = cap.saturating_sub(buf.len());
                    buf.extend_from_slice(&chunk[..n.min(room)]);
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let cap = self.limits.output_bytes;
        let out = reader(Box::new(child.stdout.take().expect("piped")), cap);
        let err = reader(Box::new(child.stderr.take().expect("piped")), cap);
        if let Some(mut si) = child.stdin.take() {
            // A program that never reads its input (or has exited) is fine.
            let _ = si.write_all(stdin.as_bytes());
        }
        let exit = loop {
            if let Some(status) = child.try_wait()? {
                use std::os::unix::process::ExitStatusExt;
                break match (status.code(), status.signal()) {
                    (Some(c), _) => Exit::Code(c),
                    (None, Some(libc::SIGXCPU)) => Exit::CpuLimit,
                    (None, Some(s)) => Exit::Signal(s),
                    _ => Exit::Signal(0),
                };
            }
            if start.elapsed() >= self.limits.wall {
                // SAFETY: signals the child's own process group (it called setsid).
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = child.wait();
                break Exit::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        // Anything the program left running in its group goes too.
        // SAFETY: as above.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let wall = start.elapsed();
        Ok(RunResult { exit, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default(), wall })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py() -> Sandbox {
        let s = Sandbox::python(Limits { wall: Duration::from_secs(3), cpu_seconds: 2, ..Default::default() }).unwrap();
        s.check().unwrap();
        s
    }

    #[test]
    fn runs_programs_with_input_and_output() {
        let r = py().run("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n", "3 4 5").unwrap();
        assert!(r.success(), "{r:?}");
        assert_eq!(r.stdout.trim(), "12");
    }

    #[test]
    fn kills_an_infinite_loop() {
        let r = py().run("while True:\n    pass\n", "").unwrap();
        assert!(matches!(r.exit, Exit::TimedOut | Exit::CpuLimit), "{r:?}");
        assert!(r.wall < Duration::from_secs(5), "stopped by the limits: {:?}", r.wall);
        // Sleeping (no CPU) is stopped by the wall clock.
        let r = py().run("import time\ntime.sleep(60)\n", "").unwrap();
        assert_eq!(r.exit, Exit::TimedOut);
        // With the CPU limit well below the wall clock, a busy loop hits the CPU limit.
        let s =
            Sandbox::python(Limits { wall: Duration::from_secs(20), cpu_seconds: 1, ..Default::default() }).unwrap();
        let r = s.run("while True:\n    pass\n", "").unwrap();
        assert_eq!(r.exit, Exit::CpuLimit, "{r:?}");
    }

    #[test]
    fn caps_memory() {
        let r = py().run("x = bytearray(2 * 1024 ** 3)\nprint('allocated')\n", "").unwrap();
        assert!(!r.success() && !r.stdout.contains("allocated"), "{r:?}");
        assert!(r.stderr.contains("MemoryError"), "{}", r.stderr);
    }

    #[test]
    fn refuses_network_access() {
        // A server on the host's loopback: reachable from here, not from the sandbox.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let prog = format!(
            "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    print('connected')\nexcept OSError as e:\n    print('blocked', e)\n"
        );
        let r = py().run(&prog, "").unwrap();
        assert!(r.stdout.starts_with("blocked"), "{r:?}");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the server itself is up");
        let r = py().run("import socket\nsocket.getaddrinfo('example.com', 80)\n", "").unwrap();
        assert!(!r.success(), "no name resolution either: {r:?}");
    }

    #[test]
    fn crashes_and_output_floods_are_results() {
        let s = py();
        let r = s.run("raise SystemExit(3)\n", "").unwrap();
        assert_eq!(r.exit, Exit::Code(3));
        let r = s.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "").unwrap();
        assert_eq!(r.exit, Exit::Signal(libc::SIGSEGV));
        let r = s.run("print('x' * 10_000_000)\n", "").unwrap();
        assert!(r.success() && r.stdout.len() == s.limits.output_bytes, "{}", r.stdout.len());
        let r = s.run("open('big', 'w').write('y' * 10_000_000)\n", "").unwrap();
        assert!(!r.success(), "file size limit: {r:?}");
    }
}
