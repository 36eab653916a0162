//! Demo data for `cargo xtask dev`: three people and a few conversations between them.

use crate::operator;
use anyhow::Context;
use convos_core::api::{CreateUserRequest, NewContent};
use convos_core::{Body, Subject, UserId};
use convos_store::jobs::NotifySettings;
use convos_store::{messages, users};
use sqlx::PgPool;

/// The demo accounts: username and display name.
pub const DEMO_USERS: [(&str, &str); 3] = [
    ("alice", "Alice Liddell"),
    ("bob", "Bob Builder"),
    ("carol", "Carol Danvers"),
];

/// Creates the demo accounts and threads unless they exist. Returns false if already seeded.
///
/// The accounts are created as an operator's are ([`operator::create_verified_user`]): their
/// addresses are verified, so the development worker emails them like any confirmed account
/// without anyone following a link.
pub async fn seed_demo(db: &PgPool, password: &str) -> anyhow::Result<bool> {
    if users::credentials(db, "alice").await?.is_some() {
        return Ok(false);
    }
    let mut ids = Vec::new();
    for (name, display) in DEMO_USERS {
        let request = CreateUserRequest {
            username: Some(name.to_owned()),
            email: Some(format!("{name}@example.com")),
            password: Some(password.to_owned()),
            display_name: Some(display.to_owned()),
        };
        let user = operator::create_verified_user(db, &request, name == "alice")
            .await
            .with_context(|| format!("could not create demo user {name}"))?;
        ids.push(user.id);
    }
    let (alice, bob, carol) = (ids[0], ids[1], ids[2]);
    let conversations: [(UserId, UserId, &str, &[&str]); 3] = [
        (
            bob,
            alice,
            "Lunch on Friday?",
            &[
                "Hi Alice, are you free for lunch on Friday? The new ramen place opened.",
                "Sounds great! 12:30 works for me.",
                "Perfect, I'll book a table for two.",
            ],
        ),
        (
            carol,
            alice,
            "Quarterly report draft",
            &[
                "Here's the first draft of the quarterly report. Could you check the numbers in section 3 before Thursday?",
            ],
        ),
        (
            alice,
            bob,
            "Welcome to Convos 🎉",
            &[
                "Hi Bob! This is Convos: short mail-style messages, threaded, with read state.\n\nReply to try it out.",
            ],
        ),
    ];
    for (from, to, subject, bodies) in conversations {
        let content = |b: &str| -> anyhow::Result<NewContent> {
            Ok(NewContent {
                body: Body::parse(b)?,
                expires_in: None,
                read_once: false,
            })
        };
        let first = messages::create_thread(
            db,
            &NotifySettings::default(),
            from,
            to,
            &Subject::parse(subject)?,
            &content(bodies[0])?,
            None,
        )
        .await?
        // Seeding runs before the server serves; the relays' first tick finds these jobs.
        .without_wake();
        let thread = messages::get(db, from, first.id()).await?.thread_id;
        for (i, body) in bodies.iter().enumerate().skip(1) {
            let sender = if i % 2 == 1 { to } else { from };
            messages::reply(
                db,
                &NotifySettings::default(),
                sender,
                thread,
                &content(body)?,
                None,
            )
            .await?
            .without_wake();
        }
    }
    Ok(true)
}
