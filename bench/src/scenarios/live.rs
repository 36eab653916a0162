//! Scenario 4, live delivery: from a `POST /api/v1/messages` returning to the recipient's
//! `message.created` event, with 1,000 idle event streams connected; the baseline is the same
//! measurement with one stream connected. Also the server's memory with those streams open.

use crate::report::{Ratio, Report, Row, Target};
use crate::scenarios::Tokens;
use crate::stats::Measure;
use crate::{Ctx, platform::Server};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SCENARIO: &str = "4. Live delivery";

/// A `message.created` event seen on a stream: the message id and when it arrived.
pub type Seen = (String, Instant);

/// Opens the event stream of `token` and forwards its `message.created` events.
pub async fn connect(
    base: &str,
    token: &str,
    seen: mpsc::UnboundedSender<Seen>,
) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(token)
        .header("Accept", "text/event-stream")
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "events answered {}",
        response.status()
    );
    tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let mut buf = String::new();
        let mut event = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find('\n') {
                let line = buf[..end].trim_end_matches('\r').to_owned();
                buf.drain(..=end);
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_owned();
                } else if let Some(data) = line.strip_prefix("data:")
                    && event == "message.created"
                    && let Ok(json) = serde_json::from_str::<serde_json::Value>(data.trim())
                    && let Some(id) = json.get("message_id").and_then(|v| v.as_str())
                {
                    let _ = seen.send((id.to_owned(), Instant::now()));
                } else if line.is_empty() {
                    event.clear();
                }
            }
        }
    });
    Ok(())
}

/// Sends `samples` messages to random connected recipients, one at a time, and times each
/// from the POST's answer to its event.
async fn sample(
    server: &Server,
    tokens: &Tokens,
    recipients: usize,
    samples: usize,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    rng: &mut StdRng,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    let mut early = 0;
    for n in 0..samples {
        let to = format!("live{:04}", rng.random_range(0..recipients));
        let response = http
            .post(format!("{}/api/v1/messages", server.base))
            .bearer_auth(tokens.of("livesender"))
            .json(&serde_json::json!({
                "recipient": to,
                "subject": format!("Live {n}"),
                "body": "Are you there?",
            }))
            .send()
            .await?;
        let returned = Instant::now();
        anyhow::ensure!(
            response.status().is_success(),
            "send answered {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await?;
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let arrived = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match seen.recv().await {
                    Some((got, at)) if got == id => return Some(at),
                    Some(_) => {}
                    None => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("message {id} never reached {to}'s stream"))?;
        if arrived < returned {
            early += 1;
        }
        latencies.push(arrived.saturating_duration_since(returned));
        // Idle gaps, like people typing: every send starts from an idle pipeline.
        tokio::time::sleep(Duration::from_millis(rng.random_range(10..60))).await;
    }
    Ok((latencies, early))
}

pub async fn run(
    ctx: &Ctx,
    server: &Server,
    tokens: &Tokens,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (smtp, smtp_port) = crate::smtp::Sink::serve()?;
    let worker = ctx
        .env
        .worker(&ctx.database_url(&ctx.corpus_db()), smtp_port, &[])?;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let mut rng = StdRng::seed_from_u64(4);
    connect(&server.base, tokens.of("live0000"), tx.clone()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Warm-up: the first sends pay for connections and caches.
    sample(server, tokens, 1, 5, &mut seen, &mut rng).await?;
    let rss_one = server.proc.rss_mib();
    let (one, _) = sample(
        server,
        tokens,
        1,
        ctx.scale.live_samples,
        &mut seen,
        &mut rng,
    )
    .await?;
    let baseline = Measure::of(&one, None, "");
    let clients = ctx.scale.live_clients;
    let started = Instant::now();
    for i in 1..clients {
        connect(&server.base, tokens.of(&format!("live{i:04}")), tx.clone()).await?;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_all = server.proc.rss_mib();
    server.proc.reset_peak();
    let (all, early) = sample(
        server,
        tokens,
        clients,
        ctx.scale.live_samples,
        &mut seen,
        &mut rng,
    )
    .await?;
    let measured = Measure::of(&all, None, "").with_peak(server.proc.peak_mib());
    let ratio = Ratio::of("p99 vs 1 stream", measured.p99_ms, baseline.p99_ms);
    report.row(Row {
        scenario: SCENARIO,
        what: format!("POST returned -> event, {clients} streams open"),
        measured: measured.clone(),
        baseline: Some(("same, 1 stream open".into(), baseline)),
        ratio,
        target: Some(Target {
            goal: format!("p99 under 100 ms with {clients} streams"),
            met: measured.p99_ms.is_some_and(|p| p < 100.0),
        }),
    });
    let memory = Measure {
        peak_mib: rss_all,
        ..Measure::default()
    };
    let one_memory = Measure {
        peak_mib: rss_one,
        ..Measure::default()
    };
    report.row(Row {
        scenario: SCENARIO,
        what: format!("server resident memory, {clients} streams open"),
        measured: memory,
        baseline: Some(("same, 1 stream open".into(), one_memory)),
        ratio: Ratio::of("RSS vs 1 stream", rss_all, rss_one),
        target: Some(Target {
            goal: format!("under 100 MB with {clients} streams"),
            met: rss_all.is_some_and(|m| m * 1.048_576 < 100.0),
        }),
    });
    if let (Some(all), Some(one)) = (rss_all, rss_one) {
        report.note(
            SCENARIO,
            format!(
                "{:.1} KiB of server memory per open stream; {clients} streams connected in {connect_secs:.1} s",
                (all - one) * 1024.0 / (clients - 1) as f64
            ),
        );
    }
    if early > 0 {
        report.note(
            SCENARIO,
            format!("{early} events arrived before their POST returned (counted as 0)"),
        );
    }
    report.note(
        SCENARIO,
        format!(
            "sequential sends with 10-60 ms idle gaps, worker with default settings; {} emails \
             reached the SMTP sink meanwhile (notification delay 120 s, so few or none)",
            smtp.accepted()
        ),
    );
    worker.stop();
    Ok(())
}
