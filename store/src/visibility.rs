//! The SQL that decides what a participant can see, written in one place.
//!
//! Queries here always bind the caller's user id as `$1`. A message is visible to a participant
//! while they have not deleted their copy, it has not expired, it has not been consumed (read
//! once) and its body has not been purged. Expiry is checked against `now()` at read time, so an
//! expired message disappears immediately, before any purge job runs.

/// `true` when message `m` is visible to user `$1`.
macro_rules! visible_to_caller {
    () => {
        "(m.consumed_at is null and m.purged_at is null \
          and (m.expires_at is null or m.expires_at > now()) \
          and ((m.sender_id = $1 and m.sender_deleted_at is null) \
            or (m.recipient_id = $1 and m.recipient_deleted_at is null)))"
    };
}
pub(crate) use visible_to_caller;

/// The rule of [`visible_to_caller`] for a walk through one thread, written so that no
/// participant index can serve it. As an `or` of two indexed equalities, the planner multiplied
/// its selectivity by the thread's (the two are correlated: every message of a thread is its
/// participants'), expected a few dozen rows of a long thread, and read and sorted all of them
/// instead of walking the thread's index for one page (decision 43). `sender_id <>
/// recipient_id` holds for every message, so the two forms select the same rows: a change to
/// the rule is a change to both (a store test compares them, `tests/visibility.rs`).
macro_rules! visible_in_thread_to_caller {
    () => {
        "(m.consumed_at is null and m.purged_at is null \
          and (m.expires_at is null or m.expires_at > now()) \
          and case when m.sender_id = $1 then m.sender_deleted_at is null \
                   when m.recipient_id = $1 then m.recipient_deleted_at is null \
                   else false end)"
    };
}
pub(crate) use visible_in_thread_to_caller;

/// The name the user `viewer` sees for the user row `person`: their display name, or their
/// username once `viewer` has blocked them. Names are read when shown, so a blocked account
/// could otherwise keep putting words of its choice in front of the blocker on every thread
/// they shared (decision 87). One probe of the `blocks` key.
macro_rules! shown_name {
    ($viewer:literal, $person:literal) => {
        concat!(
            "case when exists (select 1 from blocks bn where bn.user_id = ",
            $viewer,
            " and bn.blocked_id = ",
            $person,
            ".id) then ",
            $person,
            ".username else ",
            $person,
            ".display_name end"
        )
    };
}
pub(crate) use shown_name;

/// Columns of a message as the caller `$1` sees it; pairs with [`crate::messages::MessageRow`].
macro_rules! message_select {
    () => {
        concat!(
            "select m.id, m.thread_id, t.subject, m.body, m.read_once, m.created_at, \
                    m.in_reply_to, m.expires_at, \
                    case when m.sender_id = $1 then m.sender_read else m.recipient_read end \
                      as is_read, \
                    s.id as sender_id, s.username as sender_username, ",
            $crate::visibility::shown_name!("$1", "s"),
            " as sender_display_name, r.id as recipient_id, r.username as recipient_username, ",
            $crate::visibility::shown_name!("$1", "r"),
            " as recipient_display_name \
             from messages m \
             join threads t on t.id = m.thread_id \
             join users s on s.id = m.sender_id \
             join users r on r.id = m.recipient_id "
        )
    };
}
pub(crate) use message_select;
