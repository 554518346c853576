//! A time as RFC 3339 text in UTC with microseconds (`2026-12-02T13:16:08.123456Z`), written
//! from the calendar's arithmetic rather than through `fmt`: every log line starts with one,
//! and every Event carries one as its `eventTime`.
//!
//! humantime's `format_rfc3339_micros` through `write!` was ~720 instructions a time
//! (callgrind, cold `run --once`: 2,100 log lines and 2,000 Events), and each Event's a
//! `String` of its own; this is ~150 and kept on the stack.

use std::time::{SystemTime, UNIX_EPOCH};

/// The last second of 9999 since the epoch: four digits of year, as humantime writes them.
pub(crate) const LAST_SECOND_OF_9999: u64 = 253_402_300_799;

/// `time` as its RFC 3339 text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), the text humantime's
/// `format_rfc3339_micros` writes; `None` for a time before 1970 or after 9999, which that text
/// cannot hold.
pub(crate) fn rfc3339_micros(time: SystemTime) -> Option<Rfc3339Text> {
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    let seconds = since.as_secs();
    if seconds > LAST_SECOND_OF_9999 {
        return None;
    }
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], of_day / 3_600);
    put_digits(&mut text[14..16], of_day % 3_600 / 60);
    put_digits(&mut text[17..19], of_day % 60);
    put_digits(&mut text[20..26], u64::from(since.subsec_micros()));
    Some(Rfc3339Text(text))
}

/// A time's RFC 3339 text, on the stack.
pub(crate) struct Rfc3339Text([u8; 27]);

impl Rfc3339Text {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// `value`'s last `into.len()` decimal digits, zero-padded.
fn put_digits(into: &mut [u8], mut value: u64) {
    for digit in into.iter_mut().rev() {
        // A remainder below 10: the cast cannot truncate.
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that a leap day ends its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn written(time: SystemTime) -> Option<String> {
        rfc3339_micros(time).map(|text| text.as_str().to_owned())
    }

    fn humantime(time: SystemTime) -> String {
        humantime::format_rfc3339_micros(time).to_string()
    }

    #[test]
    fn the_calendars_edges_are_written_as_humantime_writes_them() {
        for seconds in [
            0,
            59,
            86_399,
            86_400,
            // 1972-02-29 and the day after it; 2000-02-29 (a leap century); 2100-03-01 (not).
            68_169_600,
            68_256_000,
            951_782_400,
            4_107_542_400,
            1_764_662_400,
            LAST_SECOND_OF_9999,
        ] {
            for micros in [0, 1, 999_999] {
                let time = UNIX_EPOCH + Duration::new(seconds, micros * 1_000 + 999);
                assert_eq!(written(time), Some(humantime(time)), "{seconds}.{micros}");
            }
        }
    }

    #[test]
    fn a_time_the_text_cannot_hold_is_not_written() {
        assert!(written(UNIX_EPOCH - Duration::from_micros(1)).is_none());
        let after_9999 = UNIX_EPOCH + Duration::from_secs(LAST_SECOND_OF_9999 + 1);
        assert!(written(after_9999).is_none());
    }

    proptest! {
        #[test]
        fn any_time_from_1970_to_9999_is_written_as_humantime_writes_it(
            nanos in 0u128..=(u128::from(LAST_SECOND_OF_9999) + 1) * 1_000_000_000 - 1
        ) {
            let time = UNIX_EPOCH
                + Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32);
            prop_assert_eq!(written(time), Some(humantime(time)));
        }
    }
}
