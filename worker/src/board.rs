//! The queue board as a plain-text table, for `convos-worker queues`.

use convos_core::ops::{BoardColumn, board_header, board_row};
use convos_store::ops::Board;

/// Renders the board: one line per queue, then the workers seen in the last minute.
pub fn table(board: &Board) -> String {
    let mut out = board_header(&BoardColumn::ALL);
    out.push('\n');
    for queue in &board.queues {
        out.push_str(&board_row(&BoardColumn::ALL, queue));
        out.push('\n');
    }
    out.push_str(&format!(
        "\nWORKERS ({} seen in the last minute)\n",
        board.workers.len()
    ));
    for w in &board.workers {
        out.push_str(&format!(
            "  {}  host {}  pid {}  up since {}  last seen {}\n",
            w.name,
            w.host,
            w.pid,
            w.started_at.format("%Y-%m-%d %H:%M:%S"),
            w.last_seen_at.format("%H:%M:%S"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use convos_store::ops::QueueStats;

    #[test]
    fn the_table_shows_every_queue_and_its_counts() {
        let board = Board {
            queues: vec![QueueStats {
                name: "notify_email".into(),
                pending: 3,
                scheduled: 1,
                running: 2,
                succeeded_1h: 10,
                succeeded_24h: 99,
                failed_1h: 4,
                failed_24h: 5,
                dead: 7,
                oldest_pending_secs: 125.0,
                paused: true,
                count_limit: Some(100_000),
            }],
            workers: vec![],
        };
        let table = table(&board);
        let line = table.lines().nth(1).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "notify_email",
                "paused",
                "3",
                "1",
                "2",
                "10",
                "99",
                "4",
                "5",
                "7",
                "2m05s"
            ]
        );
        assert!(table.contains("WORKERS (0 seen"));
    }
}
