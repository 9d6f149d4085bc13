//! Throwaway PostgreSQL databases for tests (this crate's and the CLI's).
//!
//! The admin URL comes from `PSN_TEST_DATABASE_URL` (set by `scripts/test.sh`, which starts a
//! throwaway cluster). Each test gets its own database, created here and dropped by
//! [`ThrowawayDatabase::drop_database`].

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The admin URL of the test PostgreSQL server, or a panic that says how to get one.
pub fn admin_url() -> String {
    std::env::var("PSN_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "PSN_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts a \
             throwaway PostgreSQL, or set it to an admin URL such as postgres://postgres@127.0.0.1:5432/postgres"
        )
    })
}

/// A database created for one test.
#[derive(Debug)]
pub struct ThrowawayDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl ThrowawayDatabase {
    /// Creates a fresh, empty database on the test server.
    pub async fn create() -> ThrowawayDatabase {
        let admin_url = admin_url();
        let name = format!("psn_test_{}", hex(crate::random_id_bytes()));
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to PSN_TEST_DATABASE_URL: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create throwaway database");
        conn.close().await.ok();
        let options = PgConnectOptions::from_str(&admin_url).expect("admin URL").database(&name);
        let url = options.to_url_lossy().to_string();
        ThrowawayDatabase { name, url, admin_url }
    }

    /// Drops the database (terminating any connection left to it).
    pub async fn drop_database(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&mut conn)
                .await;
            conn.close().await.ok();
        }
    }
}

fn hex(bytes: [u8; 8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
