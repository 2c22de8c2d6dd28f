//! A throw-away PostgreSQL cluster for tests: real server, nothing mocked.
//!
//! One cluster per test binary, started on first use in a temp directory on
//! a free loopback port, with durability switched off (fsync, full pages)
//! because the data is worth nothing. Each test asks [`fresh_database`] for
//! its own empty database, so tests run in parallel without seeing each
//! other. A watchdog shell stops the cluster and deletes its directory once
//! the test process is gone, however the process ends.
//!
//! Binaries come from `$ATV_TEST_PG_BIN` (set by
//! `scripts/test-deps/postgres.sh`), else the newest
//! `/usr/lib/postgresql/*/bin`. `initdb` and `postgres` refuse to run as
//! root, so under root they run as the `postgres` user.
//!

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The running test cluster.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();

/// The cluster of this test binary, started on first call.
pub fn cluster() -> &'static PgCluster {
    CLUSTER.get_or_init(PgCluster::start_new)
}

/// A URL for a new, empty database on the test cluster.
pub async fn fresh_database() -> String {
    tokio::task::spawn_blocking(|| cluster().create_database())
        .await
        .expect("creating a test database")
}

fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATV_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("no PostgreSQL found: run scripts/test-deps/postgres.sh or set ATV_TEST_PG_BIN")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgCluster {
    fn start_new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "atv-pg-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir for the test cluster");
        let cluster = Self {
            bin: pg_bin(),
            dir,
            port: crate::free_port(),
            as_postgres_user: is_root(),
        };
        if cluster.as_postgres_user {
            let mut chown = Command::new("chown");
            chown.args(["postgres:postgres"]).arg(&cluster.dir);
            run(chown, "chown postgres");
        }
        let mut initdb = cluster.pg_command("initdb");
        initdb.arg("-D").arg(cluster.data_dir()).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run(initdb, "initdb");
        cluster.spawn_watchdog();
        cluster.start();
        cluster
    }

    /// A command for a PostgreSQL binary, as the `postgres` user under root.
    fn pg_command(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(exe);
            cmd
        } else {
            Command::new(exe)
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Stops the cluster and removes its directory once this process exits.
    /// `setsid -f` detaches it into its own session (so killing the test
    /// harness's process group does not take it along) and returns at once.
    fn spawn_watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let as_user = if self.as_postgres_user {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {as_user}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = self.data_dir().display(),
            dir = self.dir.display(),
        );
        let mut setsid = Command::new("setsid");
        setsid
            .args(["-f", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        run(setsid, "the test cluster's watchdog");
    }

    /// Starts the server.
    fn start(&self) {
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            port = self.port,
            dir = self.dir.display(),
        );
        let mut pg_ctl = self.pg_command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"]);
        run(pg_ctl, "pg_ctl start");
    }

    /// A URL for database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn create_database(&self) -> String {
        let name = format!("t_{:016x}", fastrand::u64(..));
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&name);
        run(createdb, "createdb");
        self.url(&name)
    }
}
