//! wrk, the HTTP load generator: a run is a Lua script plus a connection count, and its result
//! comes back as one JSON line printed by the script's `done` hook.

use crate::procs;
use crate::stats::Measure;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Appended to every script: prints the summary as JSON, latencies in microseconds.
const DONE_HOOK: &str = r#"
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"#;

/// What wrk reported.
#[derive(Debug, Deserialize)]
struct Summary {
    requests: u64,
    duration_us: u64,
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
    p50_us: u64,
    p99_us: u64,
}

/// One wrk run's figures.
#[derive(Debug)]
pub struct Run {
    /// Latency percentiles and requests per second.
    pub measure: Measure,
    /// Requests answered with a non-2xx/3xx status, or failed at the socket.
    pub errors: u64,
    /// CPU seconds wrk itself used.
    pub cpu_secs: f64,
}

/// A load: where, how hard, for how long.
pub struct Load<'a> {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub base: &'a str,
    /// Lua defining the requests (`wrk.method`, `wrk.path`, `request()`, ...).
    pub script: &'a str,
    /// Open keep-alive connections.
    pub connections: u32,
    /// wrk threads (its own CPU use competes with the server on this machine).
    pub threads: u32,
    /// How long to run.
    pub duration: Duration,
}

/// Runs wrk and parses its summary.
pub fn run(load: &Load<'_>, scratch: &Path) -> anyhow::Result<Run> {
    let script = scratch.join("wrk-script.lua");
    std::fs::write(&script, format!("{}\n{DONE_HOOK}", load.script))?;
    let child = Command::new("wrk")
        .arg(format!("-t{}", load.threads.min(load.connections)))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(&script)
        .arg(load.base)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start wrk")?;
    // wrk's own CPU time is read from its zombie, after it exited and before it is reaped.
    let pid = child.id();
    let mut cpu_secs = 0.0;
    loop {
        match procs::stat(pid) {
            Some(('Z', secs)) => {
                cpu_secs = secs;
                break;
            }
            Some((_, secs)) => cpu_secs = secs,
            None => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(json) = stdout.lines().find_map(|l| l.strip_prefix("WRKJSON ")) else {
        bail!(
            "wrk printed no summary ({}): {}\n{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    };
    let s: Summary = serde_json::from_str(json).context("wrk's summary")?;
    let elapsed = Duration::from_micros(s.duration_us);
    Ok(Run {
        measure: Measure {
            p50_ms: Some(s.p50_us as f64 / 1e3),
            p99_ms: Some(s.p99_us as f64 / 1e3),
            rate: Some(s.requests as f64 / elapsed.as_secs_f64().max(1e-9)),
            unit: "req/s",
            peak_mib: None,
            samples: s.requests,
        },
        errors: s.connect + s.read + s.write + s.status + s.timeout,
        cpu_secs,
    })
}

/// A script that sends the same GET with a bearer token.
pub fn get_script(path: &str, token: &str) -> String {
    format!(
        "wrk.method = \"GET\"\nwrk.path = \"{path}\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
    )
}

/// A Lua array literal of strings (which must not need escaping).
pub fn lua_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    format!("{{{}}}", quoted.join(","))
}
