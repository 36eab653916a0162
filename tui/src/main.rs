//! `convos`: the terminal client. This placeholder only reports its version; the client itself
//! is the subject of its own issue.

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version" | "-V") => println!("convos {}", env!("CARGO_PKG_VERSION")),
        _ => {
            eprintln!(
                "convos {}: the terminal client is not built yet; use the HTTP API (see README.md)",
                env!("CARGO_PKG_VERSION")
            );
            std::process::exit(2);
        }
    }
}
