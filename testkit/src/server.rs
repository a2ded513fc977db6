//! The real `ipfaas serve` as a child process on loopback ports the OS picks.

use anyhow::{Result, bail};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running `ipfaas serve`; killed (SIGKILL) when dropped.
pub struct Server {
    /// The server's process.
    pub child: Child,
    /// Its HTTP base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its repo directory.
    pub repo: PathBuf,
}

impl Server {
    /// Starts `bin serve --listen 127.0.0.1:0 ARGS --repo REPO` and returns once the server
    /// has written its `api` file (it does so when it answers HTTP). Its log level is
    /// `IPFAAS_TEST_LOG` (say `warn,ipfaas_runtime=debug`), else `warn`; its stderr is ours.
    pub fn spawn(bin: &Path, repo: &Path, args: &[&str]) -> Result<Server> {
        let child = serve_command(bin, repo, args).spawn()?;
        Self::wait_ready(bin, repo, child)
    }

    /// Like [`spawn`](Self::spawn), for a server that the tests of one test binary share (kept
    /// in a `static`, so never dropped): it runs on a fresh repo directory of its own, and is
    /// killed and its repo removed when the test process exits, normally (an `atexit` hook) or
    /// not (the kernel's parent-death signal, sent when the thread that started it ends: so a
    /// thread that lives as long as the process starts it).
    pub fn spawn_shared(bin: &Path, args: &[&str]) -> Result<Server> {
        Self::spawn_shared_env(bin, args, &[])
    }

    /// [`spawn_shared`](Self::spawn_shared) with environment variables set for the server.
    pub fn spawn_shared_env(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Server> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ipfaas-shared-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let repo = dir.join("repo");
        let mut cmd = serve_command(bin, &repo, args);
        cmd.envs(env.iter().copied());
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent's memory.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = keeper_spawn(cmd)?;
        register_cleanup(child.id(), dir);
        Self::wait_ready(bin, &repo, child)
    }

    /// Waits for `child` to write `repo/api`.
    fn wait_ready(bin: &Path, repo: &Path, mut child: Child) -> Result<Server> {
        let t = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(repo.join("api"))
                && s.ends_with('\n')
            {
                return Ok(Server {
                    child,
                    url: s.trim().to_string(),
                    repo: repo.to_path_buf(),
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} serve exited before it answered: {status}",
                    bin.display()
                );
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                bail!("{} serve did not start within 30 s", bin.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL of a Kubo RPC command: `{url}/api/v0/{cmd}`.
    pub fn api(&self, cmd: &str) -> String {
        format!("{}/api/v0/{cmd}", self.url)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(mut self) {
        signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }

    /// SIGKILL and wait: a crash.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL without giving the handle up (say, from inside a loop that borrows it).
    pub fn crash(&self) {
        signal(self.child.id(), "KILL");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // a shared server dropped after all: nothing is left for the exit hook to do
        let pid = self.child.id();
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = shared.iter().position(|(p, _)| *p == pid) {
            let _ = std::fs::remove_dir_all(shared.swap_remove(i).1);
        }
    }
}

/// `bin serve --listen 127.0.0.1:0 ARGS --repo REPO` with the test log level, its stale `api`
/// file removed.
fn serve_command(bin: &Path, repo: &Path, args: &[&str]) -> Command {
    let _ = std::fs::remove_file(repo.join("api"));
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--repo")
        .arg(repo)
        .env(
            "IPFAAS_LOG",
            std::env::var("IPFAAS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

type Launch = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process, so that a parent-death
/// signal fires at the process's end, not at the end of the test that asked.
fn keeper_spawn(cmd: Command) -> Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Launch>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Launch>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    keeper
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))?;
    Ok(rx.recv()??)
}

/// The shared servers to kill, and their directories to remove, at exit.
static SHARED: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

type Cleanup = Box<dyn FnOnce() + Send>;

/// What else to do at exit, after the shared servers are gone.
static AT_EXIT: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

fn install_exit_hook() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        // SAFETY: registers a plain `extern "C" fn`; it runs once, at exit.
        unsafe { libc::atexit(cleanup_at_exit) };
    });
}

fn register_cleanup(pid: u32, dir: PathBuf) {
    install_exit_hook();
    SHARED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, dir));
}

/// Runs `f` when the test process exits normally, after its shared servers are stopped: the
/// cleanup of a fixture kept in a `static` (say, a Docker image the tests built).
pub fn at_exit(f: impl FnOnce() + Send + 'static) {
    install_exit_hook();
    AT_EXIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(f));
}

extern "C" fn cleanup_at_exit() {
    let shared = std::mem::take(&mut *SHARED.lock().unwrap_or_else(|e| e.into_inner()));
    for (pid, dir) in shared {
        // SAFETY: signals and reaps our own child, by its id.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
    let rest = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    for f in rest {
        f();
    }
}

/// `kill -SIG pid` (std only sends SIGKILL).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}
