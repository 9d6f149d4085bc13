//! Schedule times: what a person types after `--at`, turned into one UTC instant.
//!
//! Accepted inputs (see [`ACCEPTED_FORMATS`]):
//!
//! * RFC 3339 with an explicit offset: `2026-12-01T09:30:00Z`, `2026-12-01T09:30:00+01:00`
//!   (seconds may be left out: `2026-12-01T09:30+01:00`).
//! * A wall-clock time in the workspace time zone: `2026-12-01 09:30`, `2026-12-01T09:30`,
//!   `2026-12-01 09:30:15`.
//! * A time relative to now: `+15m`, `+2h`, `+1d`, `+1w`, `+90s`, or combinations such as
//!   `+1h30m` and `+1d 2h`; also `now`.
//!
//! Wall-clock times are checked against daylight saving time: a time that falls in the
//! spring-forward gap does not exist and is refused ([`ScheduleError::Nonexistent`]), and a
//! time that falls in the autumn fold happens twice and is refused too
//! ([`ScheduleError::Ambiguous`]) — psn never guesses which one was meant; the error says how
//! to pick one with an explicit offset.
//!
//! Times more than [`PAST_TOLERANCE_SECS`] in the past are refused, and so are times more than
//! [`MAX_AHEAD_DAYS`] ahead (almost certainly a typo in the year).
//!
//! Everything here is pure: the caller passes `now`.

use chrono::format::ParseErrorKind;
use chrono::offset::LocalResult;
use chrono::{
    DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, Offset, SecondsFormat, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

/// How far in the past (in seconds) a schedule time may be and still be accepted: "now", typed
/// a moment ago, should not be refused.
pub const PAST_TOLERANCE_SECS: i64 = 60;

/// How far ahead (in days) a schedule time may be: about two years.
pub const MAX_AHEAD_DAYS: i64 = 731;

/// The accepted formats, as shown in error messages.
pub const ACCEPTED_FORMATS: &str = "use an RFC 3339 time with an offset \
(2026-12-01T09:30:00Z or 2026-12-01T09:30:00+01:00), a date and time in the workspace time \
zone (2026-12-01 09:30), or a time from now (+15m, +2h, +1d, +1w, +1h30m)";

/// A schedule time that cannot be used, with a message a person understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing was given.
    #[error("no schedule time given; {ACCEPTED_FORMATS}")]
    Empty,

    /// The input matches none of the accepted formats.
    #[error("'{input}' is not a schedule time psn understands; {ACCEPTED_FORMATS}")]
    Unrecognized { input: String },

    /// A date without a time of day.
    #[error("'{input}' has no time of day; add one, e.g. '{input} 09:00'")]
    MissingTime { input: String },

    /// The input has the right shape but names no real date or time (February 30, 25:00, …).
    #[error("'{input}' is not a real date and time: {detail}")]
    Invalid { input: String, detail: String },

    /// A relative time (`+…`) that could not be read.
    #[error(
        "'{input}' is not a valid relative time: {detail}; write a plus sign followed by \
         amounts with units s, m, h, d or w, e.g. +15m, +2h, +1d, +1h30m"
    )]
    BadRelative { input: String, detail: String },

    /// A wall-clock time inside a daylight-saving gap (clocks jump over it).
    #[error("{local} does not exist in {tz} {detail}")]
    Nonexistent {
        input: String,
        /// The wall-clock time as understood, `YYYY-MM-DD HH:MM`.
        local: String,
        tz: String,
        /// Why, and what to use instead, e.g. `(clocks jump from 02:00 to 03:00); use 01:59 or 03:00`.
        detail: String,
    },

    /// A wall-clock time inside a daylight-saving fold (it happens twice).
    #[error(
        "{local} happens twice in {tz} ({} and {}); add the offset to say which one you mean, \
         e.g. {} for the first or {} for the second",
        .first.offset(),
        .second.offset(),
        rfc3339(.first),
        rfc3339(.second)
    )]
    Ambiguous {
        input: String,
        /// The wall-clock time as understood, `YYYY-MM-DD HH:MM`.
        local: String,
        tz: String,
        /// The first occurrence, with its offset.
        first: DateTime<FixedOffset>,
        /// The second occurrence, with its offset.
        second: DateTime<FixedOffset>,
    },

    /// The time is in the past (beyond [`PAST_TOLERANCE_SECS`]).
    #[error(
        "'{input}' is {at_local}, which is in the past (it is now {now_local}); pick a later time"
    )]
    InPast {
        input: String,
        at: DateTime<Utc>,
        at_local: String,
        now_local: String,
    },

    /// The time is more than [`MAX_AHEAD_DAYS`] ahead.
    #[error(
        "'{input}' is {at_local}, more than two years ahead (the latest allowed is \
         {limit_local}); this is probably a typo"
    )]
    TooFar {
        input: String,
        at: DateTime<Utc>,
        at_local: String,
        limit_local: String,
    },

    /// Not an IANA time zone name.
    #[error(
        "unknown time zone '{name}'; use an IANA time zone name such as Europe/Berlin, \
         America/New_York or UTC"
    )]
    BadTimeZone { name: String },
}

/// Parses an IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`). Exact spelling
/// is tried first, then a case-insensitive match (`europe/berlin`).
pub fn parse_time_zone(name: &str) -> Result<Tz, ScheduleError> {
    let trimmed = name.trim();
    if let Ok(tz) = trimmed.parse::<Tz>() {
        return Ok(tz);
    }
    if !trimmed.is_empty()
        && let Some(tz) = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(trimmed))
    {
        return Ok(*tz);
    }
    Err(ScheduleError::BadTimeZone {
        name: name.to_string(),
    })
}

/// Turns what a person typed into the UTC instant to publish at.
///
/// `now` is the current time; `tz` is the workspace time zone, used for wall-clock inputs and
/// for showing times in error messages. See the module documentation for the accepted inputs
/// and the rules.
pub fn parse_schedule(
    input: &str,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<DateTime<Utc>, ScheduleError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(ScheduleError::Empty);
    }
    let at = parse_instant(text, now, tz)?;
    check_range(text, at, now, tz)?;
    Ok(at)
}

/// Shows an instant as a wall-clock time in `tz`, e.g. `2026-03-08 09:30 PST (-08:00)`.
/// Seconds are shown only when they are not zero; the zone abbreviation is left out when it
/// is just the offset again (`+03`).
pub fn format_local(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    let time = if local.second() == 0 && local.nanosecond() == 0 {
        local.format("%Y-%m-%d %H:%M").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    };
    let abbreviation = local.format("%Z").to_string();
    let offset = local.format("%:z").to_string();
    if abbreviation.starts_with('+') || abbreviation.starts_with('-') || abbreviation.is_empty() {
        format!("{time} ({offset})")
    } else {
        format!("{time} {abbreviation} ({offset})")
    }
}

fn parse_instant(text: &str, now: DateTime<Utc>, tz: Tz) -> Result<DateTime<Utc>, ScheduleError> {
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(rest) = text.strip_prefix('+') {
        return parse_relative(text, rest, now);
    }
    if text.starts_with('-') {
        return Err(ScheduleError::Unrecognized {
            input: text.to_string(),
        });
    }
    parse_absolute(text, tz)
}

/// `+1h30m` and friends. `rest` is the text after the plus sign.
fn parse_relative(
    input: &str,
    rest: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ScheduleError> {
    let bad = |detail: &str| ScheduleError::BadRelative {
        input: input.to_string(),
        detail: detail.to_string(),
    };
    let compact: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(bad("no amount after the plus sign"));
    }

    let mut total: i64 = 0;
    let mut seen = [false; 5];
    let mut chars = compact.chars().peekable();
    while chars.peek().is_some() {
        let mut digits = String::new();
        while let Some(c) = chars.peek().copied().filter(char::is_ascii_digit) {
            digits.push(c);
            chars.next();
        }
        let Some(unit) = chars.next() else {
            return Err(bad(&format!("'{digits}' has no unit")));
        };
        if digits.is_empty() {
            return Err(bad(&format!("'{unit}' has no number in front of it")));
        }
        let (index, seconds_per_unit) = match unit {
            's' => (0, 1),
            'm' => (1, 60),
            'h' => (2, 3_600),
            'd' => (3, 86_400),
            'w' => (4, 604_800),
            other => return Err(bad(&format!("'{other}' is not a unit"))),
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(bad(&format!("the unit '{unit}' appears twice")));
        }
        let amount: i64 = digits.parse().map_err(|_| bad("the number is too large"))?;
        total = amount
            .checked_mul(seconds_per_unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| bad("the amount is too large"))?;
    }

    Duration::try_seconds(total)
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| bad("the amount is too large"))
}

/// RFC 3339 or a wall-clock date and time.
fn parse_absolute(text: &str, tz: Tz) -> Result<DateTime<Utc>, ScheduleError> {
    // Normalise: one 'T' between date and time, upper-case 'Z'.
    let normalized = normalize(text);

    // With an explicit offset: RFC 3339, or the same without seconds.
    let with_offset = offset_form(&normalized);
    if let Some(candidate) = &with_offset {
        let mut range_error = false;
        for format in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z"] {
            match DateTime::parse_from_str(candidate, format) {
                Ok(at) => return Ok(at.with_timezone(&Utc)),
                Err(e) => range_error |= is_range_error(e.kind()),
            }
        }
        if range_error {
            return Err(invalid(text));
        }
    }

    // Wall-clock time in the workspace time zone.
    let mut range_error = false;
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        match NaiveDateTime::parse_from_str(&normalized, format) {
            Ok(naive) => return resolve_local(text, naive, tz),
            Err(e) => range_error |= is_range_error(e.kind()),
        }
    }
    if range_error {
        return Err(invalid(text));
    }

    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(_) => Err(ScheduleError::MissingTime {
            input: text.to_string(),
        }),
        Err(e) if is_range_error(e.kind()) => Err(invalid(text)),
        Err(_) => Err(ScheduleError::Unrecognized {
            input: text.to_string(),
        }),
    }
}

fn normalize(text: &str) -> String {
    // "2026-12-01 09:30", "2026-12-01t09:30", "2026-12-01T09:30" all become the last.
    let mut out = String::with_capacity(text.len());
    let mut parts = text.splitn(2, [' ', 't', 'T']);
    out.push_str(parts.next().unwrap_or_default());
    if let Some(time) = parts.next() {
        out.push('T');
        out.push_str(time.trim_start());
    }
    if out.ends_with('z') {
        out.pop();
        out.push('Z');
    }
    out
}

/// If the normalised text ends in an offset (`Z`, `+01:00`, `-0500`), returns it with the
/// offset spelled `+HH:MM`; otherwise `None`.
fn offset_form(normalized: &str) -> Option<String> {
    let (_, time) = normalized.split_once('T')?;
    if let Some(stripped) = normalized.strip_suffix('Z') {
        return Some(format!("{stripped}+00:00"));
    }
    let sign_at = time.rfind(['+', '-'])?;
    let offset = &time[sign_at + 1..];
    if !offset.is_ascii() {
        return None;
    }
    let base_len = normalized.len() - time.len() + sign_at;
    let base = &normalized[..base_len];
    let sign = &time[sign_at..=sign_at];
    let spelled = match offset.len() {
        5 if offset.as_bytes()[2] == b':' => offset.to_string(),
        4 => format!("{}:{}", &offset[..2], &offset[2..]),
        2 => format!("{offset}:00"),
        _ => return None,
    };
    Some(format!("{base}{sign}{spelled}"))
}

/// An instant with its offset, spelled the way [`parse_schedule`] accepts it back.
fn rfc3339(at: &DateTime<FixedOffset>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn is_range_error(kind: ParseErrorKind) -> bool {
    matches!(
        kind,
        ParseErrorKind::OutOfRange | ParseErrorKind::Impossible
    )
}

fn invalid(text: &str) -> ScheduleError {
    ScheduleError::Invalid {
        input: text.to_string(),
        detail: "there is no such day, hour, minute or offset (check for a day past the end of \
                 the month, an hour past 23, a minute past 59 or an offset past 23:59)"
            .to_string(),
    }
}

/// Turns a wall-clock time in `tz` into an instant, refusing gaps and folds.
fn resolve_local(
    input: &str,
    naive: NaiveDateTime,
    tz: Tz,
) -> Result<DateTime<Utc>, ScheduleError> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(at) => Ok(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => {
            let (first, second) = if first <= second {
                (first, second)
            } else {
                (second, first)
            };
            Err(ScheduleError::Ambiguous {
                input: input.to_string(),
                local: show_naive(naive),
                tz: tz.name().to_string(),
                first: first.fixed_offset(),
                second: second.fixed_offset(),
            })
        }
        LocalResult::None => Err(nonexistent(input, naive, tz)),
    }
}

/// Builds the error for a wall-clock time inside a gap, naming the gap and the nearest valid
/// times on either side.
fn nonexistent(input: &str, naive: NaiveDateTime, tz: Tz) -> ScheduleError {
    let local = show_naive(naive);
    let tz_name = tz.name().to_string();
    let Some((gap_start, gap_end)) = find_gap(naive, tz) else {
        return ScheduleError::Nonexistent {
            input: input.to_string(),
            local,
            tz: tz_name,
            detail: "(the clocks skip over it)".to_string(),
        };
    };
    // The last whole minute before the gap, and the first moment after it.
    let before = truncate_to_minute(gap_start - Duration::seconds(1));
    let after = gap_end;
    let show = |t: NaiveDateTime| {
        let hm = show_time(t);
        if t.date() == naive.date() {
            hm
        } else {
            format!("{} {hm}", t.date().format("%Y-%m-%d"))
        }
    };
    ScheduleError::Nonexistent {
        input: input.to_string(),
        local,
        tz: tz_name,
        detail: format!(
            "(clocks jump from {} to {}); use {} or {}",
            show(gap_start),
            show(gap_end),
            show(before),
            show(after)
        ),
    }
}

/// For a wall-clock time inside a gap in `tz`, the local time where the gap starts and where it
/// ends (the clocks jump from the first to the second).
fn find_gap(naive: NaiveDateTime, tz: Tz) -> Option<(NaiveDateTime, NaiveDateTime)> {
    // UTC offsets lie between -12:00 and +14:00, so the transition instant lies within
    // (naive - 15h, naive + 13h) read as UTC. Find the first instant whose wall-clock time is
    // past `naive`: that is the transition.
    let local_of =
        |secs: i64| DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&tz).naive_local());
    let center = naive.and_utc().timestamp();
    let mut lo = center - 15 * 3_600;
    let mut hi = center + 13 * 3_600;
    if local_of(lo)? > naive || local_of(hi)? <= naive {
        return None;
    }
    // Invariant: local_of(lo) <= naive < local_of(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_of(mid)? > naive {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let transition = DateTime::from_timestamp(hi, 0)?;
    let before = DateTime::from_timestamp(lo, 0)?;
    let offset_before: FixedOffset = tz.offset_from_utc_datetime(&before.naive_utc()).fix();
    let gap_start = transition.naive_utc() + offset_before;
    let gap_end = local_of(hi)?;
    (gap_start <= naive && naive < gap_end).then_some((gap_start, gap_end))
}

fn truncate_to_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

fn show_naive(t: NaiveDateTime) -> String {
    format!("{} {}", t.date().format("%Y-%m-%d"), show_time(t))
}

fn show_time(t: NaiveDateTime) -> String {
    if t.second() == 0 && t.nanosecond() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

fn check_range(
    input: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<(), ScheduleError> {
    if at < now - Duration::seconds(PAST_TOLERANCE_SECS) {
        return Err(ScheduleError::InPast {
            input: input.to_string(),
            at,
            at_local: format_local(at, tz),
            now_local: format_local(now, tz),
        });
    }
    let limit = now + Duration::days(MAX_AHEAD_DAYS);
    if at > limit {
        return Err(ScheduleError::TooFar {
            input: input.to_string(),
            at,
            at_local: format_local(at, tz),
            limit_local: format_local(limit, tz),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NEW_YORK: Tz = chrono_tz::America::New_York;
    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A fixed "now" well before the test dates.
    fn now() -> DateTime<Utc> {
        utc("2026-01-15T12:00:00Z")
    }

    fn ok(input: &str, tz: Tz) -> DateTime<Utc> {
        parse_schedule(input, now(), tz).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    fn err(input: &str, tz: Tz) -> ScheduleError {
        match parse_schedule(input, now(), tz) {
            Ok(at) => panic!("{input} parsed as {at}, expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn rfc3339_with_z_and_offsets() {
        assert_eq!(
            ok("2026-12-01T09:30:00Z", NEW_YORK),
            utc("2026-12-01T09:30:00Z")
        );
        assert_eq!(
            ok("2026-12-01T09:30:00+01:00", NEW_YORK),
            utc("2026-12-01T08:30:00Z")
        );
        assert_eq!(
            ok("2026-12-01T09:30:00-05:00", BERLIN),
            utc("2026-12-01T14:30:00Z")
        );
        assert_eq!(
            ok("2026-12-01T09:30:00.250Z", BERLIN),
            utc("2026-12-01T09:30:00.250Z")
        );
        // Lower case, space separator, no seconds, compact offsets.
        assert_eq!(
            ok("2026-12-01t09:30:00z", BERLIN),
            utc("2026-12-01T09:30:00Z")
        );
        assert_eq!(
            ok("2026-12-01 09:30:00+01:00", BERLIN),
            utc("2026-12-01T08:30:00Z")
        );
        assert_eq!(ok("2026-12-01T09:30Z", BERLIN), utc("2026-12-01T09:30:00Z"));
        assert_eq!(
            ok("2026-12-01T09:30+0130", BERLIN),
            utc("2026-12-01T08:00:00Z")
        );
        assert_eq!(
            ok("  2026-12-01T09:30:00Z  ", BERLIN),
            utc("2026-12-01T09:30:00Z")
        );
    }

    #[test]
    fn explicit_offset_ignores_workspace_zone() {
        let a = ok("2026-06-01T12:00:00+02:00", NEW_YORK);
        let b = ok("2026-06-01T12:00:00+02:00", BERLIN);
        assert_eq!(a, b);
    }

    #[test]
    fn wall_clock_in_workspace_zone() {
        // New York is -05:00 in December, -04:00 in June; Berlin +01:00 / +02:00.
        assert_eq!(
            ok("2026-12-01 09:30", NEW_YORK),
            utc("2026-12-01T14:30:00Z")
        );
        assert_eq!(
            ok("2026-12-01T09:30", NEW_YORK),
            utc("2026-12-01T14:30:00Z")
        );
        assert_eq!(
            ok("2026-12-01 09:30:15", NEW_YORK),
            utc("2026-12-01T14:30:15Z")
        );
        assert_eq!(
            ok("2026-12-01T09:30:15", NEW_YORK),
            utc("2026-12-01T14:30:15Z")
        );
        assert_eq!(
            ok("2026-06-01 09:30", NEW_YORK),
            utc("2026-06-01T13:30:00Z")
        );
        assert_eq!(ok("2026-12-01 09:30", BERLIN), utc("2026-12-01T08:30:00Z"));
        assert_eq!(ok("2026-06-01 09:30", BERLIN), utc("2026-06-01T07:30:00Z"));
        assert_eq!(ok("2026-06-01 09:30", Tz::UTC), utc("2026-06-01T09:30:00Z"));
    }

    #[test]
    fn relative_times() {
        let n = now();
        assert_eq!(ok("+15m", BERLIN), n + Duration::minutes(15));
        assert_eq!(ok("+2h", BERLIN), n + Duration::hours(2));
        assert_eq!(ok("+1d", BERLIN), n + Duration::days(1));
        assert_eq!(ok("+1w", BERLIN), n + Duration::weeks(1));
        assert_eq!(ok("+90s", BERLIN), n + Duration::seconds(90));
        assert_eq!(ok("+0m", BERLIN), n);
        assert_eq!(ok("now", BERLIN), n);
        assert_eq!(ok("NOW", BERLIN), n);
    }

    #[test]
    fn relative_combinations() {
        let n = now();
        assert_eq!(ok("+1h30m", BERLIN), n + Duration::minutes(90));
        assert_eq!(ok("+30m1h", BERLIN), n + Duration::minutes(90));
        assert_eq!(ok("+1d 2h", BERLIN), n + Duration::hours(26));
        assert_eq!(
            ok("+1w2d3h4m5s", BERLIN),
            n + Duration::seconds(604_800 + 2 * 86_400 + 3 * 3_600 + 4 * 60 + 5)
        );
        assert_eq!(ok("+ 45m", BERLIN), n + Duration::minutes(45));
    }

    #[test]
    fn relative_times_do_not_care_about_dst() {
        // 2026-03-08 in New York has 23 hours; +1d is still 24 real hours.
        let before = utc("2026-03-08T05:00:00Z");
        let at = parse_schedule("+1d", before, NEW_YORK).unwrap();
        assert_eq!(at - before, Duration::hours(24));
    }

    #[test]
    fn bad_relative_times() {
        for input in [
            "+",
            "+15",
            "+m",
            "+15x",
            "+1h1h",
            "+15M",
            "+1.5h",
            "+99999999999999999999m",
            "+9223372036854775807w",
        ] {
            match err(input, BERLIN) {
                ScheduleError::BadRelative { input: got, detail } => {
                    assert_eq!(got, input);
                    assert!(!detail.is_empty());
                }
                other => panic!("{input}: expected BadRelative, got {other:?}"),
            }
        }
        let message = err("+15x", BERLIN).to_string();
        assert!(message.contains("'x' is not a unit"), "{message}");
        assert!(message.contains("+1h30m"), "{message}");
    }

    #[test]
    fn dst_gap_new_york() {
        let e = err("2026-03-08 02:30", NEW_YORK);
        assert!(matches!(e, ScheduleError::Nonexistent { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "2026-03-08 02:30 does not exist in America/New_York (clocks jump from 02:00 to \
             03:00); use 01:59 or 03:00"
        );
        // The suggested times are valid.
        assert_eq!(
            ok("2026-03-08 01:59", NEW_YORK),
            utc("2026-03-08T06:59:00Z")
        );
        assert_eq!(
            ok("2026-03-08 03:00", NEW_YORK),
            utc("2026-03-08T07:00:00Z")
        );
        // Both ends of the gap: 02:00 does not exist, 02:59:59 does not either.
        assert!(matches!(
            err("2026-03-08 02:00", NEW_YORK),
            ScheduleError::Nonexistent { .. }
        ));
        assert!(matches!(
            err("2026-03-08T02:59:59", NEW_YORK),
            ScheduleError::Nonexistent { .. }
        ));
    }

    #[test]
    fn dst_gap_berlin() {
        let e = err("2026-03-29 02:30", BERLIN);
        match &e {
            ScheduleError::Nonexistent {
                input,
                local,
                tz,
                detail,
            } => {
                assert_eq!(input, "2026-03-29 02:30");
                assert_eq!(local, "2026-03-29 02:30");
                assert_eq!(tz, "Europe/Berlin");
                assert_eq!(
                    detail,
                    "(clocks jump from 02:00 to 03:00); use 01:59 or 03:00"
                );
            }
            other => panic!("expected Nonexistent, got {other:?}"),
        }
        assert!(e.to_string().contains("does not exist in Europe/Berlin"));
        // The same wall-clock time with an explicit offset is fine.
        assert_eq!(
            ok("2026-03-29T02:30:00+01:00", BERLIN),
            utc("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn dst_gap_of_half_an_hour() {
        // Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 02:30 on 2026-10-04.
        let e = err("2026-10-04 02:10", chrono_tz::Australia::Lord_Howe);
        assert_eq!(
            e.to_string(),
            "2026-10-04 02:10 does not exist in Australia/Lord_Howe (clocks jump from 02:00 to \
             02:30); use 01:59 or 02:30"
        );
    }

    #[test]
    fn dst_fold_new_york() {
        let e = err("2026-11-01 01:30", NEW_YORK);
        match &e {
            ScheduleError::Ambiguous { first, second, .. } => {
                assert_eq!(first.offset().to_string(), "-04:00");
                assert_eq!(second.offset().to_string(), "-05:00");
                assert_eq!(*first, utc("2026-11-01T05:30:00Z"));
                assert_eq!(*second, utc("2026-11-01T06:30:00Z"));
            }
            other => panic!("expected Ambiguous, got {other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "2026-11-01 01:30 happens twice in America/New_York (-04:00 and -05:00); add the \
             offset to say which one you mean, e.g. 2026-11-01T01:30:00-04:00 for the first or \
             2026-11-01T01:30:00-05:00 for the second"
        );
        // The suggested spellings work and are an hour apart.
        let first = ok("2026-11-01T01:30:00-04:00", NEW_YORK);
        let second = ok("2026-11-01T01:30:00-05:00", NEW_YORK);
        assert_eq!(second - first, Duration::hours(1));
    }

    #[test]
    fn dst_fold_berlin() {
        let e = err("2026-10-25 02:30", BERLIN);
        match &e {
            ScheduleError::Ambiguous {
                local,
                tz,
                first,
                second,
                ..
            } => {
                assert_eq!(local, "2026-10-25 02:30");
                assert_eq!(tz, "Europe/Berlin");
                assert_eq!(first.to_rfc3339(), "2026-10-25T02:30:00+02:00");
                assert_eq!(second.to_rfc3339(), "2026-10-25T02:30:00+01:00");
            }
            other => panic!("expected Ambiguous, got {other:?}"),
        }
        assert!(
            e.to_string().contains(
                "happens twice in Europe/Berlin (+02:00 and +01:00); add the offset to say which \
                 one you mean, e.g. 2026-10-25T02:30:00+02:00 for the first or \
                 2026-10-25T02:30:00+01:00 for the second"
            ),
            "{e}"
        );
        // Just outside the fold is unambiguous.
        assert_eq!(ok("2026-10-25 01:59", BERLIN), utc("2026-10-24T23:59:00Z"));
        assert_eq!(ok("2026-10-25 03:00", BERLIN), utc("2026-10-25T02:00:00Z"));
    }

    #[test]
    fn past_is_refused() {
        let e = err("2026-01-15T11:58:59Z", Tz::UTC);
        match &e {
            ScheduleError::InPast {
                at,
                at_local,
                now_local,
                ..
            } => {
                assert_eq!(*at, utc("2026-01-15T11:58:59Z"));
                assert_eq!(at_local, "2026-01-15 11:58:59 UTC (+00:00)");
                assert_eq!(now_local, "2026-01-15 12:00 UTC (+00:00)");
            }
            other => panic!("expected InPast, got {other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "'2026-01-15T11:58:59Z' is 2026-01-15 11:58:59 UTC (+00:00), which is in the past \
             (it is now 2026-01-15 12:00 UTC (+00:00)); pick a later time"
        );
        let e = err("2025-12-01 09:30", BERLIN);
        assert!(matches!(e, ScheduleError::InPast { .. }));
        assert!(
            e.to_string()
                .contains("2025-12-01 09:30 CET (+01:00), which is in the past"),
            "{e}"
        );
    }

    #[test]
    fn slightly_past_is_within_tolerance() {
        let n = now();
        let edge = n - Duration::seconds(PAST_TOLERANCE_SECS);
        assert_eq!(ok("2026-01-15T11:59:00Z", Tz::UTC), edge);
        assert_eq!(
            ok("2026-01-15T11:59:30Z", Tz::UTC),
            n - Duration::seconds(30)
        );
        assert_eq!(ok("2026-01-15 12:59", BERLIN), n - Duration::minutes(1));
        assert_eq!(ok("2026-01-15T12:00:00Z", Tz::UTC), n);
    }

    #[test]
    fn too_far_ahead_is_refused() {
        let e = err("2028-06-01 09:00", BERLIN);
        assert!(matches!(e, ScheduleError::TooFar { .. }), "{e:?}");
        assert!(e.to_string().contains("more than two years ahead"), "{e}");
        assert!(e.to_string().contains("probably a typo"), "{e}");
        assert!(matches!(err("+800d", BERLIN), ScheduleError::TooFar { .. }));
        assert!(matches!(
            err("2099-01-01 09:00", BERLIN),
            ScheduleError::TooFar { .. }
        ));
        // The limit itself is fine.
        assert_eq!(
            ok(&format!("+{MAX_AHEAD_DAYS}d"), BERLIN),
            now() + Duration::days(MAX_AHEAD_DAYS)
        );
        assert_eq!(ok("2027-12-01 09:00", BERLIN), utc("2027-12-01T08:00:00Z"));
    }

    #[test]
    fn empty_and_garbage() {
        assert_eq!(err("", BERLIN), ScheduleError::Empty);
        assert_eq!(err("   ", BERLIN), ScheduleError::Empty);
        assert!(err("", BERLIN).to_string().contains("+15m"));
        for input in [
            "tomorrow",
            "9:30",
            "12/01/2026 09:30",
            "2026-12-01 9",
            "-15m",
            "2026-12-01T09:30:00+1",
            "🙂",
        ] {
            match err(input, BERLIN) {
                ScheduleError::Unrecognized { input: got } => assert_eq!(got, input),
                other => panic!("{input}: expected Unrecognized, got {other:?}"),
            }
        }
        // Non-ASCII where an offset would be (found by the never_panics property).
        for input in [
            "T+𐹠",
            "𐹪",
            "2026-12-01T09:30+𐹪",
            "2026-12-01T09:30-é1",
            "2026-12-01 09:30+ab:cd",
        ] {
            assert!(
                matches!(err(input, BERLIN), ScheduleError::Unrecognized { .. }),
                "{input}"
            );
        }
        let message = err("tomorrow", BERLIN).to_string();
        assert!(
            message.starts_with("'tomorrow' is not a schedule time psn understands"),
            "{message}"
        );
        assert!(message.contains("2026-12-01T09:30:00Z"), "{message}");
        assert!(message.contains("2026-12-01 09:30"), "{message}");
        assert!(message.contains("+15m"), "{message}");
    }

    #[test]
    fn impossible_dates_and_missing_times() {
        for input in [
            "2026-02-30 09:30",
            "2026-12-01 25:00",
            "2026-12-01 09:61",
            "2026-13-01 09:00",
            "2026-12-01T09:30:00+25:00",
        ] {
            assert!(
                matches!(err(input, BERLIN), ScheduleError::Invalid { .. }),
                "{input}: {:?}",
                err(input, BERLIN)
            );
        }
        assert!(
            err("2026-02-30 09:30", BERLIN)
                .to_string()
                .starts_with("'2026-02-30 09:30' is not a real date and time")
        );
        assert_eq!(
            err("2026-12-01", BERLIN).to_string(),
            "'2026-12-01' has no time of day; add one, e.g. '2026-12-01 09:00'"
        );
    }

    #[test]
    fn time_zones() {
        assert_eq!(parse_time_zone("Europe/Berlin").unwrap(), BERLIN);
        assert_eq!(parse_time_zone("america/new_york").unwrap(), NEW_YORK);
        assert_eq!(parse_time_zone(" UTC ").unwrap(), Tz::UTC);
        for bad in ["", "Mars/Olympus_Mons", "Berlin", "+01:00"] {
            let e = parse_time_zone(bad).unwrap_err();
            assert_eq!(
                e,
                ScheduleError::BadTimeZone {
                    name: bad.to_string()
                }
            );
            assert!(e.to_string().contains("Europe/Berlin"), "{e}");
        }
    }

    #[test]
    fn local_formatting() {
        assert_eq!(
            format_local(utc("2026-03-08T17:30:00Z"), chrono_tz::America::Los_Angeles),
            "2026-03-08 10:30 PDT (-07:00)"
        );
        assert_eq!(
            format_local(utc("2026-03-08T09:30:00Z"), chrono_tz::America::Los_Angeles),
            "2026-03-08 01:30 PST (-08:00)"
        );
        assert_eq!(
            format_local(utc("2026-07-01T08:00:00Z"), BERLIN),
            "2026-07-01 10:00 CEST (+02:00)"
        );
        assert_eq!(
            format_local(utc("2026-07-01T08:00:05Z"), Tz::UTC),
            "2026-07-01 08:00:05 UTC (+00:00)"
        );
        // Zones without a letter abbreviation show the offset once.
        assert_eq!(
            format_local(utc("2026-07-01T08:00:00Z"), chrono_tz::Asia::Dubai),
            "2026-07-01 12:00 (+04:00)"
        );
    }

    #[test]
    fn every_gap_in_every_zone_is_explained() {
        // Walk 2026 in every zone; wherever the clocks jump forward, every wall-clock minute
        // in the gap must be refused with a gap that contains it and valid times either side.
        let start = utc("2026-01-01T00:00:00Z").timestamp();
        let mut gaps = 0;
        for tz in chrono_tz::TZ_VARIANTS {
            let offset_at = |secs: i64| {
                let t = DateTime::from_timestamp(secs, 0).unwrap();
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc()
            };
            for hour in 0..365 * 24 {
                let t = start + hour * 3_600;
                if offset_at(t + 3_600) <= offset_at(t) {
                    continue;
                }
                let base = DateTime::from_timestamp(t, 0)
                    .unwrap()
                    .with_timezone(&tz)
                    .naive_local();
                for minute in 0..=180 {
                    let naive = base + Duration::minutes(minute);
                    if !matches!(tz.from_local_datetime(&naive), LocalResult::None) {
                        continue;
                    }
                    gaps += 1;
                    let (gap_start, gap_end) = find_gap(naive, tz)
                        .unwrap_or_else(|| panic!("{naive} in {}: no gap found", tz.name()));
                    assert!(
                        gap_start <= naive && naive < gap_end,
                        "{naive} {gap_start} {gap_end}"
                    );
                    let before = truncate_to_minute(gap_start - Duration::seconds(1));
                    assert!(
                        matches!(tz.from_local_datetime(&before), LocalResult::Single(_)),
                        "{before} in {}",
                        tz.name()
                    );
                    assert!(
                        matches!(tz.from_local_datetime(&gap_end), LocalResult::Single(_)),
                        "{gap_end} in {}",
                        tz.name()
                    );
                    let input = naive.format("%Y-%m-%d %H:%M").to_string();
                    let now = DateTime::from_timestamp(t, 0).unwrap() - Duration::days(1);
                    match parse_schedule(&input, now, tz) {
                        Err(ScheduleError::Nonexistent { detail, .. }) => {
                            assert!(detail.starts_with("(clocks jump from "), "{detail}");
                        }
                        other => panic!("{input} in {}: {other:?}", tz.name()),
                    }
                }
            }
        }
        assert!(gaps > 1_000, "only {gaps} nonexistent minutes found");
    }

    fn any_tz() -> impl Strategy<Value = Tz> {
        (0..chrono_tz::TZ_VARIANTS.len()).prop_map(|i| chrono_tz::TZ_VARIANTS[i])
    }

    /// Instants from 2000 to 2100, with sub-second precision.
    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        (946_684_800i64..4_102_444_800i64, 0u32..1_000_000_000u32)
            .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(at in any_instant(), tz in any_tz(), shown_in in any_tz(), offset_now in -60i64..=0) {
            // Shown in any zone's offset, parsed with any workspace zone, at any "now" close by.
            let now = at - Duration::seconds(offset_now);
            let text = at.with_timezone(&shown_in).to_rfc3339();
            prop_assert_eq!(parse_schedule(&text, now, tz), Ok(at));
            let text = at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            prop_assert_eq!(parse_schedule(&text, now, tz), Ok(at));
        }

        #[test]
        fn wall_clock_round_trips_or_explains(at in any_instant(), tz in any_tz()) {
            // Every instant's own wall-clock time either parses back to it, or is in a fold
            // (then the error offers the instant's own offset).
            let at = at.with_nanosecond(0).unwrap();
            let text = at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string();
            match parse_schedule(&text, at, tz) {
                Ok(parsed) => prop_assert_eq!(parsed, at),
                Err(ScheduleError::Ambiguous { first, second, .. }) => {
                    // DateTime equality ignores the offset; compare the spelling too.
                    let own = at.with_timezone(&tz).fixed_offset().to_rfc3339();
                    prop_assert!(first < second);
                    prop_assert!(
                        own == first.to_rfc3339() || own == second.to_rfc3339(),
                        "{} not in {} / {}", own, first, second
                    );
                    // Both spellings the error suggests parse back to what they say.
                    prop_assert_eq!(parse_schedule(&rfc3339(&first), first.to_utc(), tz), Ok(first.to_utc()));
                    prop_assert_eq!(parse_schedule(&rfc3339(&second), second.to_utc(), tz), Ok(second.to_utc()));
                }
                Err(other) => prop_assert!(false, "{}: {}", text, other),
            }
        }

        #[test]
        fn never_panics(input in "\\PC{0,40}", tz in any_tz()) {
            let _ = parse_schedule(&input, DateTime::from_timestamp(1_800_000_000, 0).unwrap(), tz);
        }

        #[test]
        fn never_panics_on_near_misses(
            input in "[+-]?[0-9]{0,5}[-:T tZz+smhdw]?[0-9]{0,4}[-:T tZz+]?[0-9]{0,3}[-:T tZz+.]?[0-9]{0,4}[-:+Zz]?[0-9é]{0,4}",
            tz in any_tz(),
        ) {
            let _ = parse_schedule(&input, DateTime::from_timestamp(1_800_000_000, 0).unwrap(), tz);
        }
    }
}
