//! The I/O edge: owns the terminal, feeds keys, API answers and live events into the app as
//! messages, runs the app's effects as tasks, counts the tasks in flight (and tells the app, for
//! the spinner), and redraws only when something happened, so an idle client uses no CPU.

use crate::api::Client;
use crate::app::{AccountAnswer, AccountCall, App, Effect, LoginAnswer, LoginCall, Msg};
use crate::desktop::{self, Notification, Notify};
use crate::theme::Theme;
use crate::{sse, ui};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent, EventStream, KeyEventKind, MouseEventKind,
};
use futures::{FutureExt, StreamExt};
use std::io::Write;
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::mpsc::{self, UnboundedSender};

/// How the client meets the terminal and the desktop: from `config.toml` and the environment.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The colours (`[theme]`, NO_COLOR already applied).
    pub theme: Theme,
    /// How new mail is announced on the desktop.
    pub notify: Notify,
    /// Whether the mouse is captured (click to select, wheel to scroll).
    pub mouse: bool,
}

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
        Effect::SaveOutbox(_)
            | Effect::Bell
            | Effect::Editor(_)
            | Effect::Suspend
            | Effect::Redraw
            | Effect::Notify(_)
            | Effect::UseSession { .. }
            | Effect::SaveDraft(_)
            | Effect::DeleteDraft(_)
            | Effect::LoadDrafts
            | Effect::SaveCache(_)
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
    if let Some(result) = drafts(&effect, tx) {
        if let Err(e) = result {
            let _ = tx.send(Msg::Done(
                String::new(),
                Err(crate::api::ApiError::Protocol(format!(
                    "could not keep the draft: {e}"
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
            Effect::LoadMe => {
                let result = client.me().await;
                // The server said whose this token is: from now on it opens that account's
                // cache; if it did not before, what the cache holds comes first.
                if let (Ok(me), Some(token)) = (&result, client.token()) {
                    let (base, token, user) =
                        (client.base().to_owned(), token.to_owned(), me.user.id);
                    let cached =
                        tokio::task::spawn_blocking(move || bind_cache(&base, &token, user))
                            .await
                            .ok()
                            .flatten();
                    if let Some(snapshot) = cached {
                        let _ = answers.send(Answer::Progress(Msg::Cached(Box::new(snapshot))));
                    }
                }
                Some(Msg::Me(result))
            }
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
            Effect::LoadThreadRow(thread) => Some(Msg::ThreadRow {
                thread,
                result: client.thread(thread).await,
            }),
            Effect::LoadNewMessages(thread) => Some(Msg::NewMessages {
                thread,
                result: client.newest_messages(thread).await,
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
            Effect::LookUpBlock(person) => {
                let blocked = client
                    .blocks()
                    .await
                    .map(|blocked| blocked.iter().any(|b| b.id == person.id));
                Some(Msg::BlockLooked(person, blocked))
            }
            Effect::SetBlock(person, block) => {
                let name = &person.username;
                let (done, result) = if block {
                    (
                        format!("Blocked {name}: they can no longer write to you"),
                        client.block(name).await,
                    )
                } else {
                    (format!("Unblocked {name}"), client.unblock(name).await)
                };
                Some(Msg::Done(done, result))
            }
            Effect::LookUpReport(thread, person) => {
                let newest = client.newest_messages(thread).await.map(|page| {
                    page.items
                        .into_iter()
                        .find(|message| message.sender.id == person.id)
                });
                Some(Msg::ReportLooked(person, newest))
            }
            Effect::Report(message, reason) => Some(match client.report(message, reason).await {
                Ok(kept) => Msg::Done(crate::app::reported(reason, kept.reason), Ok(())),
                Err(e) => Msg::Done(String::new(), Err(e)),
            }),
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
            Effect::SaveOutbox(_)
            | Effect::Editor(_)
            | Effect::Bell
            | Effect::Suspend
            | Effect::Redraw
            | Effect::Notify(_)
            | Effect::UseSession { .. }
            | Effect::SaveDraft(_)
            | Effect::DeleteDraft(_)
            | Effect::LoadDrafts
            | Effect::SaveCache(_) => None,
            Effect::Login(call) => Some(Msg::Login(login(call).await)),
            Effect::Account(call) => Some(Msg::Account(account(&client, call).await)),
            Effect::LoadBoard => Some(Msg::Board(client.board().await)),
            Effect::LoadDeadJobs(cursor) => {
                let page = client.dead_jobs(cursor.as_deref()).await;
                Some(Msg::DeadJobs(cursor, page))
            }
            Effect::Admin {
                command,
                done,
                unchanged,
            } => {
                let result = client.admin_action(&command).await;
                let said = if matches!(result, Ok(Some(0))) {
                    unchanged
                } else {
                    done
                };
                Some(Msg::Done(said, result.map(drop)))
            }
        };
        let _ = answers.send(Answer::Settled(msg));
    });
    true
}

/// Runs a drafts effect on the spot (small local files); `None` for any other effect.
fn drafts(effect: &Effect, tx: &UnboundedSender<Msg>) -> Option<anyhow::Result<()>> {
    let dir = crate::config::dir();
    match effect {
        Effect::SaveDraft(draft) => Some(crate::drafts::save(&dir, draft).map(drop)),
        Effect::DeleteDraft(key) => Some(crate::drafts::remove(&dir, key)),
        Effect::LoadDrafts => {
            let _ = tx.send(Msg::Drafts(crate::drafts::load(&dir)));
            Some(Ok(()))
        }
        _ => None,
    }
}

/// Sessions already bound to their account in this process (`server\ntoken`), so the index
/// is read once per session, not on every `GET /me`.
static BOUND: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Binds the session to `user`'s cache; returns that cache if the binding is new (the start
/// could not show it).
fn bind_cache(base: &str, token: &str, user: convos_core::UserId) -> Option<crate::app::Snapshot> {
    let key = format!("{base}\n{token}");
    if BOUND.lock().ok()?.contains(&key) {
        return None;
    }
    let dir = crate::config::dir();
    let new = crate::cache::remember(&dir, base, token, user).ok()?;
    BOUND.lock().ok()?.push(key);
    new.then(|| crate::cache::load_user(&dir, base, user, chrono::Utc::now()))
        .flatten()
}

/// Writes the cache off the draw path; one write at a time, and a failure is reported.
fn save_cache(
    snapshot: Box<crate::app::Snapshot>,
    tx: &UnboundedSender<Msg>,
) -> tokio::task::JoinHandle<()> {
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let _one_at_a_time = WRITING.lock();
        if let Err(e) = crate::cache::save(&crate::config::dir(), &snapshot, chrono::Utc::now()) {
            let _ = tx.send(Msg::Done(
                String::new(),
                Err(crate::api::ApiError::Protocol(format!(
                    "could not keep the cache: {e}"
                ))),
            ));
        }
    })
}

/// Sends the login screen's call; it needs no token, and goes to the server typed there.
async fn login(call: LoginCall) -> LoginAnswer {
    match &call {
        LoginCall::LogIn {
            server,
            username,
            password,
        } => LoginAnswer::LoggedIn {
            server: server.clone(),
            result: Client::new(server, None)
                .login(username, password.expose())
                .await,
        },
        LoginCall::SignUp { server, .. } => {
            let request = call.sign_up_request().unwrap_or_default();
            LoginAnswer::SignedUp(Client::new(server, None).sign_up(&request).await)
        }
    }
}

/// Sends the settings screen's call.
async fn account(client: &Client, call: AccountCall) -> AccountAnswer {
    match call {
        AccountCall::SaveEmail {
            mode,
            digest_hour,
            time_zone,
        } => {
            let patch = convos_core::api::PreferencesPatch {
                email_mode: Some(mode),
                digest_hour: Some(i64::from(digest_hour)),
                time_zone: Some(time_zone),
                ..Default::default()
            };
            AccountAnswer::Saved(client.update_settings(&patch).await)
        }
        AccountCall::LoadSessions => AccountAnswer::Sessions(client.sessions().await),
        AccountCall::RevokeSession(id) => AccountAnswer::Revoked(client.revoke_session(id).await),
        AccountCall::RevokeOtherSessions => {
            AccountAnswer::RevokedOthers(client.revoke_other_sessions().await.map(|r| r.revoked))
        }
        AccountCall::ChangePassword { .. } => {
            let request = call.password_request().unwrap_or_default();
            AccountAnswer::PasswordChanged(client.change_password(&request).await)
        }
        AccountCall::ChangeEmail { .. } => {
            let request = call.email_request().unwrap_or_default();
            AccountAnswer::EmailChanged(client.change_email(&request).await)
        }
        AccountCall::RevokeReplyAddresses => {
            AccountAnswer::ReplyAddressesRevoked(client.revoke_reply_addresses().await)
        }
    }
}

/// Stores a session as `convos login` does: the server in `config.toml`, the token in its
/// private file.
fn store_session(server: &str, token: &str) -> anyhow::Result<()> {
    let dir = crate::config::dir();
    let mut config = crate::config::load(&dir)?;
    config.server = Some(server.to_owned());
    crate::config::save(&dir, &config)?;
    crate::config::save_token(&dir, token)
}

/// Follows the live events of `client`'s session (none without a token).
fn follow(client: &Client, tx: &UnboundedSender<Msg>) -> Option<tokio::task::JoinHandle<()>> {
    let token = client.token()?.to_owned();
    Some(tokio::spawn(sse::follow(
        client.base().to_owned(),
        token,
        tx.clone(),
    )))
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
pub async fn run(
    client: Client,
    bell: bool,
    keymap: crate::keys::Keymap,
    options: Options,
) -> anyhow::Result<()> {
    let mouse = options.mouse;
    let mut terminal = enter(mouse);
    // A panic must not leave the shell receiving mouse reports or bracketed pastes; ratatui's
    // own hook (set by `enter`) restores the rest.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if mouse {
            let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
        }
        let _ = crossterm::execute!(std::io::stdout(), DisableBracketedPaste);
        hook(info);
    }));
    let result = event_loop(&mut terminal, client, bell, keymap, options).await;
    leave(mouse);
    result
}

/// Takes the terminal: raw mode, the alternate screen, bracketed paste (a paste arrives as one
/// event, never as keys), the mouse if configured, and the terminal's own title kept aside
/// (xterm's title stack) to be given back.
fn enter(mouse: bool) -> ratatui::DefaultTerminal {
    let terminal = ratatui::init();
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x1b[22;0t");
    let _ = crossterm::execute!(out, EnableBracketedPaste);
    if mouse {
        let _ = crossterm::execute!(out, EnableMouseCapture);
    }
    let _ = out.flush();
    terminal
}

/// Gives the terminal back as it was: the mouse released, our title cleared and the old one
/// restored where the terminal keeps a title stack, the screen and modes restored.
fn leave(mouse: bool) {
    let mut out = std::io::stdout();
    if mouse {
        let _ = crossterm::execute!(out, DisableMouseCapture);
    }
    let _ = crossterm::execute!(out, DisableBracketedPaste);
    let _ = crossterm::execute!(out, crossterm::terminal::SetTitle(""));
    let _ = out.write_all(b"\x1b[23;0t");
    let _ = out.flush();
    ratatui::restore();
}

/// Stops the process as Ctrl-Z does in a shell (the terminal already given back), and returns
/// once `fg` (SIGCONT) resumes it.
async fn suspend(resumed: &mut Signal) {
    // A SIGCONT from before (someone's `kill -CONT`) must not pass for this resume.
    while resumed.recv().now_or_never().is_some() {}
    if nix::sys::signal::raise(nix::sys::signal::Signal::SIGTSTP).is_err() {
        return;
    }
    // Stopped here until `fg`. Where nothing stops the process (no job control: the stop is
    // ignored), no SIGCONT comes: carry on after a moment rather than hang.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), resumed.recv()).await;
}

/// Announces a new message on the desktop, as configured: an OSC sequence to the terminal, or
/// `notify-send` (nothing if it is not installed).
fn notify(how: Notify, note: &Notification) {
    if let Some(sequence) = desktop::osc(how, note) {
        let mut out = std::io::stdout();
        let _ = out.write_all(sequence.as_bytes());
        let _ = out.flush();
    } else if how == Notify::NotifySend {
        let argv = desktop::notify_send(note);
        let child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
    }
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    mut client: Client,
    bell: bool,
    keymap: crate::keys::Keymap,
    options: Options,
) -> anyhow::Result<()> {
    let mouse = options.mouse;
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let (answers, mut answers_rx) = mpsc::unbounded_channel::<Answer>();
    let mut app = App::new();
    app.bell = bell;
    app.keymap = keymap;
    app.theme = options.theme;
    app.notify = options.notify;
    app.outbox = crate::outbox::open(&crate::config::dir())?;
    app.server = client.base().to_owned();
    app.drafts = crate::drafts::load(&crate::config::dir());
    if client.token().is_none() {
        app.sign_out(None);
    }
    // Effects started and not yet settled: counted here, where they run, and told to the app.
    let mut in_flight = 0usize;
    for effect in app.start() {
        in_flight += usize::from(spawn(effect, &client, &tx, &answers));
    }
    app.update(Msg::InFlight(in_flight));
    // The first frame draws from the cache, whatever the network does meanwhile.
    if app.login.is_none()
        && let Some(token) = client.token()
        && let Some(snapshot) = crate::cache::load(
            &crate::config::dir(),
            client.base(),
            token,
            chrono::Utc::now(),
        )
    {
        app.update(Msg::Cached(Box::new(snapshot)));
    }
    // The cache is written a moment after what is shown changed, all changes of that moment
    // at once, off the draw path; the last write, awaited before the one made on exit.
    let cache_pause = std::time::Duration::from_secs(2);
    let mut cache_due: Option<tokio::time::Instant> = None;
    let mut cache_write: Option<tokio::task::JoinHandle<()>> = None;
    let mut live = follow(&client, &tx);
    let mut keys = EventStream::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Listened to from the start, so the resume after Ctrl-Z is never missed.
    let mut resumed = tokio::signal::unix::signal(SignalKind::from_raw(
        nix::sys::signal::Signal::SIGCONT as i32,
    ))?;
    // The title last written (`None`: write it again, e.g. after a resume).
    let mut title: Option<String> = None;
    terminal.draw(|f| ui::render(f, &app, chrono::Utc::now()))?;
    // Ticks refresh the queue board; they only flow while it is open, so an idle mailbox
    // wakes up for nothing.
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(3));
    // Queued messages are retried every 10 s (and at once when the live stream reconnects).
    let mut retries = tokio::time::interval(std::time::Duration::from_secs(
        crate::app::OUTBOX_RETRY_SECS,
    ));
    // The last key typed: a draft is saved once the typing pauses for a second.
    let mut typed = tokio::time::Instant::now();
    let pause = std::time::Duration::from_secs(1);
    loop {
        let draft_pending = app.draft_pending();
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
            _ = tokio::time::sleep_until(typed + pause), if draft_pending => Some(Msg::SaveDraft),
            _ = tokio::time::sleep_until(cache_due.unwrap_or_else(tokio::time::Instant::now)),
                if cache_due.is_some() =>
            {
                cache_due = None;
                Some(Msg::SaveCache(chrono::Utc::now()))
            }
            _ = ticks.tick(), if ops_open => Some(Msg::Tick),
            _ = retries.tick(), if queued => Some(Msg::RetryOutbox),
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) if key.kind == KeyEventKind::Press => Some(Msg::Key(key)),
                Some(Ok(TermEvent::Paste(text))) => Some(Msg::Paste(text)),
                Some(Ok(TermEvent::Resize(..))) => None,
                Some(Ok(TermEvent::Mouse(event)))
                    if mouse
                        && matches!(
                            event.kind,
                            MouseEventKind::Down(_)
                                | MouseEventKind::ScrollDown
                                | MouseEventKind::ScrollUp
                        ) =>
                {
                    let size = terminal.size()?;
                    let screen = ratatui::layout::Rect::new(0, 0, size.width, size.height);
                    Some(Msg::Mouse { event, screen })
                }
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
            if matches!(msg, Msg::Key(_) | Msg::Paste(_)) {
                typed = tokio::time::Instant::now();
            }
            for effect in app.update(msg) {
                if let Effect::Editor(text) = effect {
                    // The editor owns the terminal meanwhile: stop reading keys, leave the
                    // alternate screen, and restore both afterwards.
                    drop(keys);
                    leave(mouse);
                    let edited = tokio::task::spawn_blocking(move || edit(&text))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r);
                    // A fresh terminal has an empty buffer, so the next draw repaints it all.
                    *terminal = enter(mouse);
                    keys = EventStream::new();
                    title = None;
                    let _ = tx.send(Msg::Edited(edited));
                } else if effect == Effect::Redraw {
                    // Cleared, the terminal's buffer and ratatui's both start empty: the next
                    // draw writes every cell (a wide glyph the terminal drew differently leaves
                    // ghosts the diff never rewrites).
                    let _ = terminal.clear();
                } else if effect == Effect::Suspend {
                    drop(keys);
                    leave(mouse);
                    suspend(&mut resumed).await;
                    // A fresh terminal has an empty buffer, so the next draw repaints it all.
                    *terminal = enter(mouse);
                    keys = EventStream::new();
                    title = None;
                } else if let Effect::SaveCache(snapshot) = effect {
                    cache_write = Some(save_cache(snapshot, &tx));
                } else if let Effect::Notify(note) = &effect {
                    notify(app.notify, note);
                } else if let Effect::UseSession { server, token } = effect {
                    // The login screen bought a session: keep it, and use it from the next
                    // effect on (the root lists the mailbox's loads after this one).
                    if let Err(e) = store_session(&server, token.expose()) {
                        let _ = tx.send(Msg::Done(
                            String::new(),
                            Err(crate::api::ApiError::Protocol(format!(
                                "the session works but could not be stored: {e}"
                            ))),
                        ));
                    }
                    client = Client::new(&server, Some(token.expose().to_owned()));
                    if let Some(old) = live.take() {
                        old.abort();
                    }
                    live = follow(&client, &tx);
                } else {
                    in_flight += usize::from(spawn(effect, &client, &tx, &answers));
                }
            }
        }
        if in_flight != app.in_flight {
            app.update(Msg::InFlight(in_flight));
        }
        // Signed out (the token ended): no live events until a new login.
        if app.login.is_some()
            && let Some(old) = live.take()
        {
            old.abort();
            // The token no longer opens the account's cache (its mail stays for the next login).
            if let Some(token) = client.token() {
                let _ = crate::cache::forget_session(&crate::config::dir(), client.base(), token);
            }
        }
        if cache_due.is_none() && app.cache_pending() {
            cache_due = Some(tokio::time::Instant::now() + cache_pause);
        }
        if app.quit {
            break;
        }
        let now = desktop::title(app.me.as_ref().map_or(0, |m| m.unread_count));
        if title.as_deref() != Some(now.as_str()) {
            let _ = crossterm::execute!(std::io::stdout(), crossterm::terminal::SetTitle(&now));
            title = Some(now);
        }
        terminal.draw(|f| ui::render(f, &app, chrono::Utc::now()))?;
    }
    // Quitting (or SIGTERM) with a message being written keeps it as a draft.
    for effect in app.on_exit() {
        spawn(effect, &client, &tx, &answers);
    }
    // What changed since the last write is kept too, after that write.
    if let Some(write) = cache_write {
        let _ = write.await;
    }
    for effect in app.update(Msg::SaveCache(chrono::Utc::now())) {
        if let Effect::SaveCache(snapshot) = effect {
            let _ = crate::cache::save(&crate::config::dir(), &snapshot, chrono::Utc::now());
        }
    }
    if let Some(live) = live {
        live.abort();
    }
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
        assert!(
            !runs_as_task(&Effect::SaveCache(Box::default())),
            "the cache is written off the draw path without counting as a request"
        );
    }

    #[test]
    fn a_login_is_a_request_and_switching_to_its_session_is_done_on_the_spot() {
        assert!(runs_as_task(&Effect::Login(crate::app::LoginCall::LogIn {
            server: "http://127.0.0.1:8080".into(),
            username: "bob".into(),
            password: crate::app::Secret::new("password-bob"),
        })));
        assert!(runs_as_task(&Effect::Account(AccountCall::LoadSessions)));
        assert!(!runs_as_task(&Effect::UseSession {
            server: "http://127.0.0.1:8080".into(),
            token: crate::app::Secret::new("cvs_token"),
        }));
    }
}
