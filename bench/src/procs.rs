//! Processes under test: started from the release binaries, read through `/proc` (memory, CPU)
//! and stopped with SIGTERM like a supervisor would.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process of the benchmark.
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with its output appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("could not open {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("could not start {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited with {status}", self.name);
        }
        Ok(())
    }

    /// Resident memory now, MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        status_kib(self.pid(), "VmRSS:").map(|k| k / 1024.0)
    }

    /// Peak resident memory since start or the last [`Proc::reset_peak`], MiB.
    pub fn peak_mib(&self) -> Option<f64> {
        status_kib(self.pid(), "VmHWM:").map(|k| k / 1024.0)
    }

    /// Starts a new peak-memory window (Linux `clear_refs` 5).
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// User plus system CPU time so far, seconds.
    pub fn cpu_secs(&self) -> Option<f64> {
        cpu_secs(self.pid())
    }

    /// SIGTERM, then SIGKILL after ten seconds.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    /// A scenario that fails part-way leaves no process behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn status_kib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second of `/proc` CPU times.
fn ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The state letter and user+system CPU seconds of a process (also readable as a zombie, i.e.
/// after it exited and before it is reaped, which is how a load generator's total is read).
pub fn stat(pid: u32) -> Option<(char, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((state, (utime + stime) / ticks_per_sec()))
}

/// User plus system CPU seconds of a process.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    stat(pid).map(|(_, secs)| secs)
}

/// Busy and total CPU seconds of the whole machine, from `/proc/stat`.
pub fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    ((total - idle) / ticks_per_sec(), total / ticks_per_sec())
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Program name (`comm`) and CPU seconds of every process on the machine, by pid (kernel
/// threads rename themselves, so names alone would not match across a window).
fn cpu_by_pid() -> std::collections::HashMap<u32, (String, f64)> {
    let mut by = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return by;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let (Ok(comm), Some(secs)) = (
            std::fs::read_to_string(format!("/proc/{pid}/comm")),
            cpu_secs(pid),
        ) else {
            continue;
        };
        // Kernel workers carry their current job in the name: group them as one.
        let comm = comm.trim();
        let name = comm.split_once('/').map_or(comm, |(n, _)| n).to_owned();
        by.insert(pid, (name, secs));
    }
    by
}

/// Where the machine's CPU went during a window, by program.
pub struct CpuShare {
    before: std::collections::HashMap<u32, (String, f64)>,
    machine: (f64, f64),
}

impl CpuShare {
    /// Starts the window.
    pub fn start() -> Self {
        Self {
            before: cpu_by_pid(),
            machine: machine_cpu(),
        }
    }

    /// `postgres 61%, convos-server 27%, ...` of the machine's busy time, largest first, and
    /// how busy the machine was (cores in use on average).
    pub fn finish(&self) -> String {
        self.finish_with(&[])
    }

    /// [`CpuShare::finish`], counting programs that already exited (a load generator, whose
    /// total is read from its zombie) with the CPU seconds given.
    pub fn finish_with(&self, exited: &[(&str, f64)]) -> String {
        let mut after: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
        for (pid, (name, secs)) in cpu_by_pid() {
            let before = self.before.get(&pid).map_or(0.0, |(_, s)| *s);
            *after.entry(name).or_insert(0.0) += secs - before;
        }
        for (name, secs) in exited {
            *after.entry((*name).to_owned()).or_insert(0.0) += secs;
        }
        let (busy, total) = machine_cpu();
        let busy = (busy - self.machine.0).max(1e-9);
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let used = busy / ((total - self.machine.1).max(1e-9) / cores);
        let mut shares: Vec<(String, f64)> = after
            .into_iter()
            .filter(|(_, d)| *d / busy >= 0.01)
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        let list: Vec<String> = shares
            .iter()
            .map(|(n, d)| format!("{n} {:.0}%", 100.0 * d / busy))
            .collect();
        format!("{:.2} of {cores:.0} cores busy: {}", used, list.join(", "))
    }
}
