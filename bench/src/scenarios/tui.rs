//! Scenario 6, terminal client: time from starting the real `convos` binary in a pseudo-terminal
//! to its first frame showing the inbox, for a 10,000-thread mailbox beside a 10-thread one;
//! the same from the client's local cache with a server that accepts connections and never
//! answers, beside the first from the network; and the render time of a full screen of threads (TestBackend) beside ratatui drawing the same
//! text as a plain paragraph.

use crate::report::{Ratio, Report, Row, Target};
use crate::scenarios::Tokens;
use crate::stats::Measure;
use crate::{Ctx, platform::Server};
use anyhow::Context;
use convos_core::api::{Me, Page, Thread};
use convos_tui::app::{App, Connection};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::widgets::Paragraph;
use sqlx::PgPool;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const SCENARIO: &str = "6. Terminal client";
const COLS: u16 = 160;
const ROWS: u16 = 50;

pub async fn run(
    ctx: &Ctx,
    server: &Server,
    db: &PgPool,
    tokens: &Tokens,
    report: &mut Report,
) -> anyhow::Result<()> {
    let sizes = &ctx.scale.corpus.mailboxes;
    let big = *sizes
        .iter()
        .find(|n| **n >= 10_000)
        .unwrap_or(sizes.last().unwrap_or(&10));
    let small = sizes[0];
    let mut figures = Vec::new();
    for n in [small, big] {
        let user = format!("box{n}");
        let marker = newest_subject(db, &user).await?;
        let mut times = Vec::new();
        let mut peak = Vec::new();
        for _ in 0..ctx.scale.tui_runs {
            let (took, mib) = first_frame(ctx, &server.base, tokens.of(&user), marker.trim())?;
            times.push(took);
            peak.extend(mib);
        }
        let peak = crate::stats::median(&peak);
        figures.push((n, Measure::of(&times, None, "").with_peak(peak)));
    }
    let (_, baseline) = figures[0].clone();
    let (n, measured) = figures[1].clone();
    let network = measured.clone();
    report.row(Row {
        scenario: SCENARIO,
        what: format!(
            "start to first inbox frame, {n}-thread inbox ({} runs)",
            ctx.scale.tui_runs
        ),
        ratio: Ratio::of(
            &format!("p50 vs {small}-thread"),
            measured.p50_ms,
            baseline.p50_ms,
        ),
        measured,
        baseline: Some((format!("same, {small}-thread inbox"), baseline)),
        target: None,
    });

    // From the cache: the big inbox's cache primed by one run against the server, then the
    // client started against a server that accepts connections and never answers.
    let user = format!("box{big}");
    let marker = newest_subject(db, &user).await?;
    let cached = from_cache(ctx, &server.base, tokens.of(&user), marker.trim())?;
    report.row(Row {
        scenario: SCENARIO,
        what: format!(
            "start to first inbox frame from the cache, {big}-thread inbox, server silent ({} \
             runs)",
            ctx.scale.tui_runs
        ),
        ratio: Ratio::of("p50 vs from the network", cached.p50_ms, network.p50_ms),
        target: Some(Target {
            goal: "under 50 ms whatever the network does (p99)".into(),
            met: cached.p99_ms.is_some_and(|p| p < 50.0),
        }),
        measured: cached,
        baseline: Some((
            format!("same from the network, server up, {big}-thread inbox"),
            network,
        )),
    });

    // Rendering: a full screen of real threads from the big mailbox.
    let http = reqwest::Client::new();
    let token = tokens.of(&format!("box{big}"));
    let me: Me = http
        .get(format!("{}/api/v1/me", server.base))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let page: Page<Thread> = http
        .get(format!(
            "{}/api/v1/threads?folder=inbox&limit=100",
            server.base
        ))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let mut app = App::new();
    app.connection = Connection::Live;
    app.me = Some(me);
    app.mailbox.threads = page.items;
    let now = chrono::Utc::now();
    let mut terminal = Terminal::new(TestBackend::new(COLS, ROWS))?;
    let frames = ctx.scale.frames;
    let mut app_times = Vec::new();
    for _ in 0..frames {
        let t0 = Instant::now();
        terminal.draw(|f| convos_tui::ui::render(f, &app, now))?;
        app_times.push(t0.elapsed());
    }
    let screen = terminal.backend().to_string();
    let text: Vec<String> = screen.lines().map(str::to_owned).collect();
    let mut plain = Terminal::new(TestBackend::new(COLS, ROWS))?;
    let mut plain_times = Vec::new();
    for _ in 0..frames {
        let t0 = Instant::now();
        plain.draw(|f| f.render_widget(Paragraph::new(text.join("\n")), f.area()))?;
        plain_times.push(t0.elapsed());
    }
    let measured = Measure::of(&app_times, None, "");
    let baseline = Measure::of(&plain_times, None, "");
    report.row(Row {
        scenario: SCENARIO,
        what: format!("render a full {COLS}x{ROWS} screen of threads ({frames} frames)"),
        ratio: Ratio::of("p50 vs plain text", measured.p50_ms, baseline.p50_ms),
        measured,
        baseline: Some((
            "ratatui drawing the same text as one paragraph".into(),
            baseline,
        )),
        target: None,
    });
    report.note(
        SCENARIO,
        format!(
            "the client ran in a {COLS}x{ROWS} pseudo-terminal (util-linux `script`); \"first \
             inbox frame\" is when the newest thread's subject appears on the terminal; peak \
             memory is the client's; \"from the cache\" primes the client's cache with one run \
             against the server, then points the client (with that cache) at a listener that \
             accepts connections and never answers"
        ),
    );
    Ok(())
}

/// The first dozen characters of `user`'s newest inbox thread's subject: the client shows it
/// from its first frame.
async fn newest_subject(db: &PgPool, user: &str) -> anyhow::Result<String> {
    let subject: String = sqlx::query_scalar(
        "select t.subject from thread_participants tp join threads t on t.id = tp.thread_id \
         join users u on u.id = tp.user_id \
         where u.username = $1 and tp.received_count > 0 and not tp.archived \
         order by tp.last_activity_at desc, tp.thread_id desc limit 1",
    )
    .bind(user)
    .fetch_one(db)
    .await?;
    Ok(subject.chars().take(12).collect())
}

/// Starts the client with an empty configuration folder and times its first frame showing
/// `marker`; also reads the client's peak memory then.
fn first_frame(
    ctx: &Ctx,
    base: &str,
    token: &str,
    marker: &str,
) -> anyhow::Result<(Duration, Option<f64>)> {
    let home = ctx.env.work_dir.join("tui-home");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home)?;
    run_client(ctx, &home, base, token, marker)
}

/// A listener that accepts connections and never answers: the network at its worst, neither
/// refusing nor failing.
struct Silent {
    base: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Silent {
    fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            // Held open, never read or written, until the end.
            let mut held = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            base,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Start to first frame from the cache: one run against the server fills the client's cache
/// (written as it quits), which is then moved to a silent server's address through the
/// client's cache module; each timed run starts the client against that server.
fn from_cache(ctx: &Ctx, base: &str, token: &str, marker: &str) -> anyhow::Result<Measure> {
    let home = ctx.env.work_dir.join("tui-cache-home");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home)?;
    run_client(ctx, &home, base, token, marker)?;
    let dir = home.join("convos");
    let mut snapshot = convos_tui::cache::load(&dir, base, token, chrono::Utc::now())
        .context("the client wrote no cache on its way out")?;
    let silent = Silent::start()?;
    snapshot.server.clone_from(&silent.base);
    let user = snapshot.user.context("the cache names its user")?;
    convos_tui::cache::save(&dir, &snapshot, chrono::Utc::now())?;
    convos_tui::cache::remember(&dir, &silent.base, token, user)?;
    let mut times = Vec::new();
    let mut peak = Vec::new();
    for _ in 0..ctx.scale.tui_runs {
        let (took, mib) = run_client(ctx, &home, &silent.base, token, marker)?;
        times.push(took);
        peak.extend(mib);
    }
    Ok(Measure::of(&times, None, "").with_peak(crate::stats::median(&peak)))
}

/// Starts the client in a pseudo-terminal with the configuration folder `home` and times its
/// first frame showing `marker`; also reads the client's peak memory then. The client is
/// stopped with SIGTERM (it writes its cache on the way out).
fn run_client(
    ctx: &Ctx,
    home: &Path,
    base: &str,
    token: &str,
    marker: &str,
) -> anyhow::Result<(Duration, Option<f64>)> {
    let client = ctx.env.bin_dir.join("convos");
    let started = Instant::now();
    let mut child = Command::new("script")
        .args(["-qfec"])
        .arg(format!(
            "stty rows {ROWS} cols {COLS}; exec {}",
            client.display()
        ))
        .arg("/dev/null")
        .env("CONVOS_SERVER", base)
        .env("CONVOS_TOKEN", token)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("TERM", "xterm-256color")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = String::new();
    let took = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(bytes) => {
                screen.push_str(&strip_ansi(&String::from_utf8_lossy(&bytes)));
                if screen.contains(marker) {
                    break started.elapsed();
                }
            }
            Err(_) => {
                let _ = child.kill();
                anyhow::bail!("the client never showed {marker:?}; it printed: {screen}");
            }
        }
    };
    // The client process is the `script` child that exec'd `convos`.
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id();
    let client_pid = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()
        .and_then(|c| {
            c.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
        });
    let peak = client_pid.and_then(|p| crate::procs::status_kib(p, "VmHWM:").map(|k| k / 1024.0));
    if let Some(p) = client_pid {
        let _ = Command::new("kill")
            .args(["-TERM", &p.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Ok((took, peak));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok((took, peak))
}

/// Text without terminal escape sequences (CSI and OSC), as it appears on screen in order.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_removed_and_text_kept() {
        assert_eq!(
            strip_ansi("\x1b[1;1H\x1b[38;5;2mhello\x1b[0m world"),
            "hello world"
        );
        assert_eq!(strip_ansi("\x1b]0;title\x07text"), "text");
        assert_eq!(strip_ansi("\x1b]0;title\x1b\\text"), "text");
    }
}
