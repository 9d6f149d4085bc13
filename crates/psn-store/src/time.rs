//! Times cross the database as Unix milliseconds on both backends.

use chrono::{DateTime, TimeZone, Utc};

pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}
