//! PostgreSQL and Redis for development and tests, without Docker.
//!
//! `DATABASE_URL` / `REDIS_URL` are used when they answer. Otherwise the servers are started
//! from the installed binaries, with their data under `target/convos-services/<profile>/` and on
//! free loopback ports; missing binaries are installed with apt when running as root, or the
//! exact install command is printed. Whatever was started here is stopped on drop.

use crate::run::{self, is_root, on_path, output, step};
use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which data directory to use: development data survives restarts, test data does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Kept between runs of `cargo xtask dev`.
    Dev,
    /// Wiped at the start of every `cargo xtask test`.
    Test,
    /// `cargo xtask bench`: its own stores (never `DATABASE_URL`/`REDIS_URL`), kept between
    /// runs so the generated corpus can be reused, with durable production-like settings.
    Bench,
}

impl Profile {
    fn dir_name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Test => "test",
            Profile::Bench => "bench",
        }
    }
}

/// Running stores and how to reach them.
pub struct Services {
    /// This profile's folder under `target/convos-services/`.
    pub dir: PathBuf,
    /// A PostgreSQL URL whose role may create databases.
    pub database_url: String,
    /// A Redis URL.
    pub redis_url: String,
    postgres: Option<Postgres>,
    redis: Option<Child>,
}

impl Services {
    /// Finds or starts both stores.
    pub fn start(profile: Profile) -> anyhow::Result<Self> {
        let base = run::root()
            .join("target")
            .join("convos-services")
            .join(profile.dir_name());
        std::fs::create_dir_all(&base).with_context(|| format!("could not create {base:?}"))?;

        let external = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|_| profile != Profile::Bench)
        };
        let (database_url, postgres) = match external("DATABASE_URL") {
            Some(url) if answers(&url, 5432) => {
                step(&format!(
                    "using PostgreSQL at DATABASE_URL ({})",
                    redact(&url)
                ));
                (url, None)
            }
            _ => {
                let pg = Postgres::start(&base.join("postgres"), profile)?;
                (pg.url(), Some(pg))
            }
        };
        let (redis_url, redis) = match external("REDIS_URL") {
            Some(url) if answers(&url, 6379) => {
                step(&format!("using Redis at REDIS_URL ({})", redact(&url)));
                (url, None)
            }
            _ => {
                let (url, child) = start_redis(&base.join("redis"))?;
                (url, Some(child))
            }
        };
        Ok(Self {
            dir: base,
            database_url,
            redis_url,
            postgres,
            redis,
        })
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if let Some(mut redis) = self.redis.take() {
            let _ = redis.kill();
            let _ = redis.wait();
        }
        if let Some(pg) = self.postgres.take() {
            pg.stop();
        }
    }
}

/// The URL with any password hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Whether something accepts TCP connections at the URL's host and port.
fn answers(url: &str, default_port: u16) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    let addr = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    let Ok(mut addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("could not find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Installs Debian packages when running as root with apt; otherwise explains how.
pub fn install(packages: &[&str], what: &str) -> anyhow::Result<()> {
    let command = format!("apt-get install -y {}", packages.join(" "));
    if !(is_root() && on_path("apt-get").is_some()) {
        bail!(
            "{what} is not installed. Install it with:\n    sudo apt-get update && sudo {command}{}",
            match what {
                "PostgreSQL" => "\nor point DATABASE_URL at a running server.",
                "Redis" => "\nor point REDIS_URL at a running server.",
                _ => "",
            }
        );
    }
    step(&format!(
        "{what} is not installed; installing it with apt ({command})"
    ));
    run::run(Command::new("apt-get").arg("update").arg("-q"))?;
    run::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Address space one process of the test PostgreSQL may map: its shared memory (128 MB of
/// `shared_buffers` by default, about 200 MB mapped in all) plus ample room for an ordinary
/// backend's work memory, index builds and parallel workers.
const TEST_BACKEND_ADDRESS_SPACE: u64 = 1 << 30;

/// A PostgreSQL client program (e.g. `psql`): from the installed server's binaries, else `PATH`.
pub(crate) fn postgres_tool(program: &str) -> Option<PathBuf> {
    Postgres::find_bin()
        .map(|dir| dir.join(program))
        .filter(|p| p.is_file())
        .or_else(|| on_path(program))
}

struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl Postgres {
    fn find_bin() -> Option<PathBuf> {
        if let Ok(out) = output(Command::new("pg_config").arg("--bindir")) {
            let dir = PathBuf::from(out.trim());
            if dir.join("initdb").is_file() {
                return Some(dir);
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Some(bin);
        }
        on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
    }

    fn command(&self, program: &str) -> Command {
        self.command_limited(program, None)
    }

    /// `program`, as the `postgres` user when running as root, and with its address space
    /// (and that of every process it starts) capped at `address_space` bytes if given.
    fn command_limited(&self, program: &str, address_space: Option<u64>) -> Command {
        let exe = self.bin.join(program);
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if self.as_postgres_user {
            // PostgreSQL refuses to run as root; run its tools as the `postgres` system user.
            argv.extend(["runuser", "-u", "postgres", "--"].map(Into::into));
        }
        // After runuser, whose PAM session may reset limits.
        if let Some(bytes) = address_space {
            argv.extend([
                "prlimit".into(),
                format!("--as={bytes}").into(),
                "--".into(),
            ]);
        }
        argv.push(exe.into_os_string());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    fn start(dir: &Path, profile: Profile) -> anyhow::Result<Self> {
        let bin = match Self::find_bin() {
            Some(bin) => bin,
            None => {
                install(&["postgresql"], "PostgreSQL")?;
                Self::find_bin().context("PostgreSQL was installed but initdb is not found")?
            }
        };
        let as_postgres_user = is_root();
        let data = dir.join("data");
        let pg = Self {
            bin,
            data,
            port: free_port()?,
            as_postgres_user,
        };
        if pg.data.join("postmaster.pid").exists() {
            // A previous run died without stopping it.
            let _ = pg
                .command("pg_ctl")
                .arg("-D")
                .arg(&pg.data)
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if profile == Profile::Test && dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("could not clear {dir:?}"))?;
        }
        std::fs::create_dir_all(dir)?;
        if as_postgres_user {
            run::run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir),
            )?;
        }
        if !pg.data.join("PG_VERSION").exists() {
            step(&format!(
                "creating a PostgreSQL cluster in {}",
                pg.data.display()
            ));
            let out = pg
                .command("initdb")
                .arg("-D")
                .arg(&pg.data)
                .args(["-U", "convos", "--auth=trust", "-E", "UTF8", "--locale=C"])
                .output()
                .context("could not run initdb")?;
            if !out.status.success() {
                bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        // Tests run hostile queries (e.g. the search bomb): each backend of the test cluster
        // gets an address-space limit, so a runaway query fails with "out of memory" instead
        // of the kernel's OOM killer taking the whole cluster, or the machine.
        let address_space = match profile {
            Profile::Test if on_path("prlimit").is_some() => Some(TEST_BACKEND_ADDRESS_SPACE),
            Profile::Test => {
                step("prlimit is not installed: the test PostgreSQL runs without a memory cap");
                None
            }
            Profile::Dev | Profile::Bench => None,
        };
        step(&format!(
            "starting PostgreSQL on 127.0.0.1:{}{}",
            pg.port,
            match address_space {
                Some(bytes) => format!(", {} MiB of address space per process", bytes >> 20),
                None => String::new(),
            }
        ));
        // Tests and development trade durability for speed; benchmarks measure what production
        // would run: durable commits, and a buffer cache sized for the generated corpus; they
        // also count statements (`pg_stat_statements`) to say where PostgreSQL's time went.
        let tuning = if profile == Profile::Bench {
            "-c shared_buffers=1GB -c max_wal_size=4GB \
             -c shared_preload_libraries=pg_stat_statements"
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} {tuning} -c max_connections=300",
            pg.port,
            dir.display()
        );
        let log = dir.join("postgres.log");
        let status = pg
            .command_limited("pg_ctl", address_space)
            .arg("-D")
            .arg(&pg.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdout(Stdio::null())
            .status()
            .context("could not run pg_ctl")?;
        if !status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "PostgreSQL did not start; its log ({}) ends with:\n{tail}",
                log.display()
            );
        }
        let created = pg
            .command("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "convos",
                "convos",
            ])
            .stderr(Stdio::piped())
            .output()?;
        let stderr = String::from_utf8_lossy(&created.stderr);
        if !created.status.success() && !stderr.contains("already exists") {
            bail!("could not create the convos database: {stderr}");
        }
        Ok(pg)
    }

    fn url(&self) -> String {
        format!("postgres://convos@127.0.0.1:{}/convos", self.port)
    }

    fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

fn start_redis(dir: &Path) -> anyhow::Result<(String, Child)> {
    let exe = match on_path("redis-server") {
        Some(exe) => exe,
        None => {
            install(&["redis-server"], "Redis")?;
            on_path("redis-server").context("redis-server was installed but is not on PATH")?
        }
    };
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    step(&format!("starting Redis on 127.0.0.1:{port}"));
    let log = std::fs::File::create(dir.join("redis.log"))?;
    let mut child = Command::new(exe)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("could not start redis-server")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if ping_redis(port) {
            return Ok((format!("redis://127.0.0.1:{port}"), child));
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "redis-server exited with {status}; see {}",
                dir.join("redis.log").display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("redis-server did not answer within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping_redis(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut buf).is_ok()
        && &buf == b"+PONG\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capped_postmaster_starts_under_prlimit_after_switching_user() {
        let pg = Postgres {
            bin: PathBuf::from("/usr/lib/postgresql/15/bin"),
            data: PathBuf::from("/tmp/data"),
            port: 5432,
            as_postgres_user: true,
        };
        let cmd = pg.command_limited("pg_ctl", Some(TEST_BACKEND_ADDRESS_SPACE));
        let argv: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            argv,
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "prlimit",
                "--as=1073741824",
                "--",
                "/usr/lib/postgresql/15/bin/pg_ctl"
            ]
        );
        let plain = pg.command("psql");
        assert_eq!(plain.get_args().count(), 4, "only runuser, no limit");
    }
}
