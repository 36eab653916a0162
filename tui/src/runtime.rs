//! The I/O edge: owns the terminal, feeds keys, API answers and live events into the app as
//! messages, runs the app's effects as tasks, counts the tasks in flight (and tells the app, for
//! the spinner), and redraws only when something happened, so an idle client uses no CPU.

use crate::api::Client;
use crate::app::{App, Effect, Msg};
use crate::{sse, ui};
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc::{self, UnboundedSender};

/// What a running effect sends back.
enum Answer {
    /// A message on the way (a queued message sent while others still wait).
    Progress(Msg),
    /// The effect is done, with its last message if it has one.
    Settled(Option<Msg>),
}

/// Whether an effect runs as a task that answers (and so counts as in flight); the others are
/// done on the spot.
fn runs_as_task(effect: &Effect) -> bool {
    !matches!(
        effect,
        Effect::SaveOutbox(_) | Effect::Bell | Effect::Editor(_)
    )
}

/// Runs one effect: on the spot, or in the background with its result coming back as an
/// [`Answer`]. Returns whether a task was started.
fn spawn(
    effect: Effect,
    client: &Client,
    tx: &UnboundedSender<Msg>,
    answers: &UnboundedSender<Answer>,
) -> bool {
    if let Effect::SaveOutbox(outbox) = &effect {
        if let Err(e) = crate::outbox::save(outbox) {
            let _ = tx.send(Msg::Done(
                String::new(),
                Err(crate::api::ApiError::Protocol(format!(
                    "could not save the outbox: {e}"
                ))),
            ));
        }
        return false;
    }
    if effect == Effect::Bell {
        use std::io::Write;
        let _ = std::io::stdout().write_all(b"\x07");
        return false;
    }
    if !runs_as_task(&effect) {
        return false;
    }
    let client = client.clone();
    let answers = answers.clone();
    tokio::spawn(async move {
        let msg = match effect {
            Effect::LoadMe => Some(Msg::Me(client.me().await)),
            Effect::LoadThreads { folder, cursor } => Some(Msg::Threads {
                folder,
                append: cursor.is_some(),
                result: client.threads(folder, cursor.as_deref()).await,
            }),
            Effect::LoadMessages(thread) => Some(Msg::Messages {
                thread,
                older: false,
                result: client.messages(thread, None).await,
            }),
            Effect::LoadOlder(thread, cursor) => Some(Msg::Messages {
                thread,
                older: true,
                result: client.messages(thread, Some(&cursor)).await,
            }),
            Effect::Send {
                recipient,
                subject,
                body,
                key,
                options,
            } => {
                let request = options.message_request(&recipient, &subject, &body);
                let result = client.create_message(&request, &key).await;
                Some(Msg::Sent(key, result))
            }
            Effect::Reply {
                thread,
                body,
                key,
                options,
            } => {
                let request = options.reply_request(&body);
                let result = client.create_reply(thread, &request, &key).await;
                Some(Msg::Sent(key, result))
            }
            Effect::ThreadAction {
                thread,
                action,
                done,
            } => Some(Msg::Done(
                done.to_owned(),
                client.thread_action(thread, action).await.map(drop),
            )),
            Effect::MarkUnread(message) => Some(Msg::Done(
                "Marked unread".into(),
                client.set_read(message, false).await.map(drop),
            )),
            Effect::DeleteThread(thread) => Some(Msg::Done(
                "Deleted".into(),
                client.delete_thread(thread).await,
            )),
            Effect::Search(query) => {
                let result = client.search(&query).await;
                Some(Msg::SearchResults(query, result))
            }
            Effect::Complete(prefix) => {
                let result = client.usernames(&prefix).await;
                Some(Msg::Completions { prefix, result })
            }
            Effect::OpenThread(thread) => Some(Msg::ThreadLoaded(client.thread(thread).await)),
            Effect::OpenOnce(message) => Some(Msg::Opened(client.message(message).await)),
            Effect::Flush(queued) => {
                // One at a time, in the order written; each reports back on its own.
                for outgoing in queued {
                    let options = outgoing.options;
                    let result = match &outgoing.reply_to {
                        Some((thread, _)) => {
                            let request = options.reply_request(&outgoing.body);
                            client.create_reply(*thread, &request, &outgoing.key).await
                        }
                        None => {
                            let request = options.message_request(
                                &outgoing.recipient,
                                &outgoing.subject,
                                &outgoing.body,
                            );
                            client.create_message(&request, &outgoing.key).await
                        }
                    };
                    let offline = matches!(result, Err(crate::api::ApiError::Offline(_)));
                    let sent = answers.send(Answer::Progress(Msg::Flushed {
                        key: outgoing.key,
                        result,
                    }));
                    if sent.is_err() || offline {
                        break;
                    }
                }
                None
            }
            Effect::SaveOutbox(_) | Effect::Editor(_) | Effect::Bell => None,
            Effect::LoadBoard => Some(Msg::Board(client.board().await)),
            Effect::LoadDeadJobs => Some(Msg::DeadJobs(client.dead_jobs().await)),
            Effect::Admin { path, done } => Some(Msg::Done(done, client.admin_action(&path).await)),
        };
        let _ = answers.send(Answer::Settled(msg));
    });
    true
}

/// Opens `text` in the configured editor, `$VISUAL`, `$EDITOR` or `vi`, and returns what the
/// file holds afterwards.
fn edit(text: &str) -> Result<String, String> {
    let configured = crate::config::load(&crate::config::dir())
        .ok()
        .and_then(|c| c.editor);
    let editor = configured
        .ok_or(std::env::VarError::NotPresent)
        .or_else(|_| std::env::var("VISUAL"))
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let path = std::env::temp_dir().join(format!("convos-draft-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    // Through the shell, so an editor setting with arguments (`code --wait`) works.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("convos-editor")
        .arg(&path)
        .status()
        .map_err(|e| format!("could not start {editor}: {e}"))?;
    let result = if status.success() {
        std::fs::read_to_string(&path).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "{editor} exited with {status}; the draft is unchanged"
        ))
    };
    let _ = std::fs::remove_file(&path);
    result
}

/// Runs the client until the user quits. The terminal is restored on every exit path,
/// including panics (ratatui's hook) and SIGTERM.
pub async fn run(client: Client, bell: bool, keymap: crate::keys::Keymap) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let result = event_loop(&mut terminal, client, bell, keymap).await;
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    client: Client,
    bell: bool,
    keymap: crate::keys::Keymap,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let (answers, mut answers_rx) = mpsc::unbounded_channel::<Answer>();
    let mut app = App::new();
    app.bell = bell;
    app.keymap = keymap;
    app.outbox = crate::outbox::open(&crate::config::dir())?;
    // Effects started and not yet settled: counted here, where they run, and told to the app.
    let mut in_flight = 0usize;
    for effect in app.start() {
        in_flight += usize::from(spawn(effect, &client, &tx, &answers));
    }
    app.update(Msg::InFlight(in_flight));
    let live = tokio::spawn(sse::follow(
        client.base().to_owned(),
        client.token().unwrap_or_default().to_owned(),
        tx.clone(),
    ));
    let mut keys = EventStream::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    terminal.draw(|f| ui::render(f, &app, chrono::Utc::now()))?;
    // Ticks refresh the queue board; they only flow while it is open, so an idle mailbox
    // wakes up for nothing.
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(3));
    // Queued messages are retried every 10 s (and at once when the live stream reconnects).
    let mut retries = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        let ops_open = app.wants_ticks();
        let queued = !app.outbox.is_empty();
        // The next time an expiring message's countdown moves or it expires; nothing shown
        // expires: no wake-up.
        let wake = app.next_wake(chrono::Utc::now());
        let expiry = tokio::time::sleep(
            wake.and_then(|at| (at - chrono::Utc::now()).to_std().ok())
                .unwrap_or_default(),
        );
        let msg = tokio::select! {
            _ = expiry, if wake.is_some() => Some(Msg::Expire(chrono::Utc::now())),
            _ = ticks.tick(), if ops_open => Some(Msg::Tick),
            _ = retries.tick(), if queued => Some(Msg::RetryOutbox),
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) if key.kind == KeyEventKind::Press => Some(Msg::Key(key)),
                Some(Ok(TermEvent::Resize(..))) => None,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            Some(msg) = rx.recv() => Some(msg),
            Some(answer) = answers_rx.recv() => match answer {
                Answer::Progress(msg) => Some(msg),
                Answer::Settled(msg) => {
                    in_flight = in_flight.saturating_sub(1);
                    msg
                }
            },
            _ = term.recv() => break,
        };
        if let Some(msg) = msg {
            for effect in app.update(msg) {
                if let Effect::Editor(text) = effect {
                    // The editor owns the terminal meanwhile: stop reading keys, leave the
                    // alternate screen, and restore both afterwards.
                    drop(keys);
                    ratatui::restore();
                    let edited = tokio::task::spawn_blocking(move || edit(&text))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r);
                    // A fresh terminal has an empty buffer, so the next draw repaints it all.
                    *terminal = ratatui::init();
                    keys = EventStream::new();
                    let _ = tx.send(Msg::Edited(edited));
                } else {
                    in_flight += usize::from(spawn(effect, &client, &tx, &answers));
                }
            }
        }
        if in_flight != app.in_flight {
            app.update(Msg::InFlight(in_flight));
        }
        if app.quit {
            break;
        }
        terminal.draw(|f| ui::render(f, &app, chrono::Utc::now()))?;
    }
    live.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use convos_core::api::Folder;

    #[test]
    fn requests_count_as_in_flight_and_local_work_does_not() {
        assert!(runs_as_task(&Effect::LoadMe));
        assert!(runs_as_task(&Effect::LoadThreads {
            folder: Folder::Inbox,
            cursor: None
        }));
        assert!(runs_as_task(&Effect::Flush(vec![])));
        assert!(!runs_as_task(&Effect::Bell));
        assert!(!runs_as_task(&Effect::SaveOutbox(vec![])));
        assert!(!runs_as_task(&Effect::Editor(String::new())));
    }
}
