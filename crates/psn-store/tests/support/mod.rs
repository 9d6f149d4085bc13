//! Test hubs for the conformance suite: one fresh SQLite file or one fresh PostgreSQL database
//! per test, dropped when the test ends (also when it panics).
//!
//! Cases take only a `&Hub`. What they need beyond it — the hub's URL, a second fresh database
//! of the same backend, raw SQL on the same database — they get from here, looked up by the
//! hub's (unique) name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use psn_store::testing::ThrowawayDatabase;
use psn_store::{BackendKind, Hub};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnectOptions;

/// A hub for one test. Call [`TestHub::finish`] at the end; if the test panics first, `Drop`
/// still drops the databases.
#[derive(Debug)]
pub struct TestHub {
    pub hub: Hub,
    /// Keeps the SQLite folder alive until the test ends.
    dir: Option<tempfile::TempDir>,
    finished: bool,
}

/// What the suite knows about a test hub beyond the `Hub` itself.
#[derive(Debug)]
struct Entry {
    kind: BackendKind,
    url: String,
    /// The SQLite folder (fresh databases are created next to the hub's file).
    dir: Option<PathBuf>,
    /// Every PostgreSQL database made for this test, the hub's own first.
    databases: Vec<ThrowawayDatabase>,
}

static REGISTRY: Mutex<Option<HashMap<String, Entry>>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn with_registry<T>(f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
    let mut guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

fn unique_name(kind: BackendKind) -> String {
    format!(
        "test-{}-{}",
        kind.as_str(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A migrated hub in a fresh SQLite file `<tempdir>/personal.db`.
pub async fn sqlite_hub() -> TestHub {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}/personal.db", dir.path().display());
    let name = unique_name(BackendKind::Sqlite);
    let hub = Hub::open(&name, &url).await.expect("open SQLite hub");
    assert_eq!(hub.kind(), BackendKind::Sqlite);
    with_registry(|r| {
        r.insert(
            name,
            Entry {
                kind: BackendKind::Sqlite,
                url,
                dir: Some(dir.path().to_path_buf()),
                databases: Vec::new(),
            },
        )
    });
    TestHub {
        hub,
        dir: Some(dir),
        finished: false,
    }
}

/// A migrated hub in a fresh PostgreSQL database on `PSN_TEST_DATABASE_URL` (which must be
/// set: these tests are never skipped).
pub async fn postgres_hub() -> TestHub {
    let db = ThrowawayDatabase::create().await;
    let url = db.url.clone();
    let name = unique_name(BackendKind::Postgres);
    with_registry(|r| {
        r.insert(
            name.clone(),
            Entry {
                kind: BackendKind::Postgres,
                url: url.clone(),
                dir: None,
                databases: vec![db],
            },
        )
    });
    // Registered first, so the database is dropped even if opening fails.
    let hub = match Hub::open(&name, &url).await {
        Ok(hub) => hub,
        Err(e) => {
            drop_databases(take_databases(&name));
            panic!("open PostgreSQL hub: {e}");
        }
    };
    assert_eq!(hub.kind(), BackendKind::Postgres);
    TestHub {
        hub,
        dir: None,
        finished: false,
    }
}

fn take_databases(name: &str) -> Vec<ThrowawayDatabase> {
    with_registry(|r| r.remove(name))
        .map(|e| e.databases)
        .unwrap_or_default()
}

/// Drops databases from synchronous code (`Drop`), on a thread with its own runtime so that it
/// works inside and outside a tokio runtime.
fn drop_databases(databases: Vec<ThrowawayDatabase>) {
    if databases.is_empty() {
        return;
    }
    let joined = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime");
        rt.block_on(async {
            for db in databases {
                db.drop_database().await;
            }
        });
    })
    .join();
    if joined.is_err() {
        eprintln!("warning: dropping a throwaway test database failed");
    }
}

impl TestHub {
    /// Closes the hub and drops its databases.
    pub async fn finish(mut self) {
        self.finished = true;
        self.hub.close().await;
        for db in take_databases(self.hub.name()) {
            db.drop_database().await;
        }
        if let Some(dir) = self.dir.take() {
            dir.close().ok();
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if !self.finished {
            drop_databases(take_databases(self.hub.name()));
        }
    }
}

fn entry<T>(hub: &Hub, f: impl FnOnce(&mut Entry) -> T) -> T {
    with_registry(|r| {
        let entry = r
            .get_mut(hub.name())
            .unwrap_or_else(|| panic!("hub '{}' was not made by tests/support", hub.name()));
        f(entry)
    })
}

/// The database URL of a test hub.
pub fn url(hub: &Hub) -> String {
    entry(hub, |e| e.url.clone())
}

/// The SQLite file of a test hub (`None` on PostgreSQL).
pub fn sqlite_file(hub: &Hub) -> Option<PathBuf> {
    entry(hub, |e| e.dir.as_ref().map(|d| d.join("personal.db")))
}

/// The URL of another fresh, empty database of the same backend, cleaned up with the hub.
pub async fn fresh_url(hub: &Hub) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    match entry(hub, |e| e.kind) {
        BackendKind::Sqlite => {
            let dir = entry(hub, |e| e.dir.clone()).expect("SQLite test folder");
            format!("sqlite://{}/fresh-{n}.db", dir.display())
        }
        BackendKind::Postgres => {
            let db = ThrowawayDatabase::create().await;
            let url = db.url.clone();
            entry(hub, |e| e.databases.push(db));
            url
        }
    }
}

/// A plain connection to a database, bypassing the store.
#[derive(Debug)]
pub enum RawConnection {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl RawConnection {
    pub async fn open(url: &str) -> RawConnection {
        match BackendKind::of_url(url).expect("test URL") {
            BackendKind::Sqlite => {
                // No journal_mode here: the file's own mode is what a test should see.
                let options = SqliteConnectOptions::from_str(url)
                    .expect("SQLite URL")
                    .busy_timeout(Duration::from_secs(10));
                RawConnection::Sqlite(
                    sqlx::SqliteConnection::connect_with(&options)
                        .await
                        .expect("raw SQLite"),
                )
            }
            BackendKind::Postgres => RawConnection::Postgres(
                sqlx::PgConnection::connect(url)
                    .await
                    .expect("raw PostgreSQL"),
            ),
        }
    }

    /// Runs statements; returns the rows affected.
    pub async fn execute(&mut self, sql: &str) -> u64 {
        let result = match self {
            RawConnection::Sqlite(c) => sqlx::raw_sql(sql)
                .execute(c)
                .await
                .map(|r| r.rows_affected()),
            RawConnection::Postgres(c) => sqlx::raw_sql(sql)
                .execute(c)
                .await
                .map(|r| r.rows_affected()),
        };
        result.unwrap_or_else(|e| panic!("raw SQL failed: {sql}: {e}"))
    }

    /// One integer.
    pub async fn i64(&mut self, sql: &str) -> i64 {
        let result = match self {
            RawConnection::Sqlite(c) => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await,
            RawConnection::Postgres(c) => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await,
        };
        result.unwrap_or_else(|e| panic!("raw SQL failed: {sql}: {e}"))
    }

    /// One text value.
    pub async fn text(&mut self, sql: &str) -> String {
        let result = match self {
            RawConnection::Sqlite(c) => sqlx::query_scalar::<_, String>(sql).fetch_one(c).await,
            RawConnection::Postgres(c) => sqlx::query_scalar::<_, String>(sql).fetch_one(c).await,
        };
        result.unwrap_or_else(|e| panic!("raw SQL failed: {sql}: {e}"))
    }

    pub async fn close(self) {
        match self {
            RawConnection::Sqlite(c) => c.close().await.ok(),
            RawConnection::Postgres(c) => c.close().await.ok(),
        };
    }
}

/// Runs raw SQL on a test hub's database through its own connection.
pub async fn exec(hub: &Hub, sql: &str) -> u64 {
    let mut conn = RawConnection::open(&url(hub)).await;
    let n = conn.execute(sql).await;
    conn.close().await;
    n
}

/// The `pg_dump` binary: from PATH, else the highest /usr/lib/postgresql/*/bin.
pub fn pg_dump_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("pg_dump");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: Vec<u64> = e
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = e.path().join("bin/pg_dump");
            bin.is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("pg_dump not found in PATH or /usr/lib/postgresql/*/bin: install postgresql-client")
    })
}

/// A plain-text dump of a PostgreSQL test hub (schema and data).
pub async fn pg_dump(hub: &Hub) -> String {
    let url = url(hub);
    let binary = pg_dump_binary();
    let output = tokio::process::Command::new(&binary)
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg(format!("--dbname={url}"))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    assert!(
        output.status.success(),
        "pg_dump failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("pg_dump output is text")
}
