//! Throwaway PostgreSQL databases for tests (this crate's and the CLI's).
//!
//! The admin URL comes from `PSN_TEST_DATABASE_URL` (set by `scripts/test.sh`, which starts a
//! throwaway cluster). Each test gets its own database, created here and dropped by
//! [`ThrowawayDatabase::drop_database`].

use sqlx::Connection;

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
        // The admin URL with the database swapped, not `PgConnectOptions::to_url_lossy`, which
        // adds sqlx-only parameters (`statement-cache-capacity`) that libpq tools such as
        // `pg_dump --dbname=URL` and `psql` refuse.
        let url = with_database(&admin_url, &name);
        ThrowawayDatabase {
            name,
            url,
            admin_url,
        }
    }

    /// Drops the database (terminating any connection left to it).
    pub async fn drop_database(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
            conn.close().await.ok();
        }
    }
}

/// `url` (a PostgreSQL URL) pointing at database `name` instead, its other parts unchanged.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn hex(bytes: [u8; 8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn throwaway_urls_swap_only_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h", "t1"),
            "postgres://u:p@h/t1"
        );
        assert_eq!(
            with_database("postgresql://u@h:1/admin?sslmode=disable", "t1"),
            "postgresql://u@h:1/t1?sslmode=disable"
        );
    }
}
