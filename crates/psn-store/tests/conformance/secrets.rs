//! No token is ever stored in the clear: the database's bytes (SQLite file and WAL) or its
//! dump (PostgreSQL) do not contain it.

use psn_domain::Platform;
use psn_store::{BackendKind, Hub, Secret};

use super::{cipher, new_account, schedule};
use crate::support;

const ACCESS: &str = "plaintext-canary-access-7f3a9c";
const REFRESH: &str = "plaintext-canary-refresh-2b8e41";
const HANDLE: &str = "canary-handle.bsky.social";

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that `bytes` contain neither canary, raw or hex-encoded (how bytea and blobs are
/// printed), and do contain `HANDLE`, proving the right data was read.
fn assert_no_canary(what: &str, bytes: &[u8], must_have_handle: bool) {
    for canary in [ACCESS, REFRESH, "plaintext-canary"] {
        assert!(
            !contains(bytes, canary.as_bytes()),
            "{what} contains the token '{canary}'"
        );
        for encoded in [hex(canary), hex(canary).to_ascii_uppercase()] {
            assert!(
                !contains(bytes, encoded.as_bytes()),
                "{what} contains the token '{canary}' as hex"
            );
        }
    }
    if must_have_handle {
        assert!(
            contains(bytes, HANDLE.as_bytes()),
            "{what} does not contain the handle: wrong data?"
        );
    }
}

pub async fn no_plaintext_token_at_rest(hub: &Hub) {
    let key = cipher();
    let (account, created) = hub
        .upsert_account(
            &new_account(Platform::Bluesky, HANDLE, ACCESS, Some(REFRESH)),
            &key,
        )
        .await
        .unwrap();
    assert!(created);
    // Reconnect once (an UPDATE path) and schedule a post, so every write path has run.
    let (_, created) = hub
        .upsert_account(
            &new_account(Platform::Bluesky, HANDLE, ACCESS, Some(REFRESH)),
            &key,
        )
        .await
        .unwrap();
    assert!(!created);
    schedule(hub, 1, "canary post", &[&account]).await;
    // The tokens are there, sealed: the right key opens them.
    let tokens = hub.account_tokens(&account.id, &key).await.unwrap();
    assert_eq!(tokens.access_token.expose(), ACCESS);
    assert_eq!(
        tokens.refresh_token.as_ref().map(Secret::expose),
        Some(REFRESH)
    );

    match hub.kind() {
        BackendKind::Sqlite => {
            let file = support::sqlite_file(hub).expect("SQLite file");
            let wal = file.with_file_name("personal.db-wal");
            // Read the WAL while it still holds the recent writes, then again after closing.
            if let Ok(bytes) = std::fs::read(&wal) {
                assert_no_canary("the SQLite WAL (open)", &bytes, false);
            }
            support::exec(hub, "PRAGMA wal_checkpoint(FULL)").await;
            hub.close().await;
            let bytes = std::fs::read(&file).expect("read the SQLite file");
            assert_no_canary("the SQLite file", &bytes, true);
            if let Ok(bytes) = std::fs::read(&wal) {
                assert_no_canary("the SQLite WAL", &bytes, false);
            }
        }
        BackendKind::Postgres => {
            let dump = support::pg_dump(hub).await;
            assert!(dump.contains("CREATE TABLE"), "the dump has no schema");
            assert!(
                dump.contains(account.id.as_str()),
                "the dump lacks the account row"
            );
            assert_no_canary("pg_dump of the hub", dump.as_bytes(), true);
        }
    }
}
