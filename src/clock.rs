//! The clock: what time it is on the device. `--now RFC3339` fixes it for tests and for replaying
//! scenarios; otherwise it is the system clock in the system's local time zone.
//!
//! The device's local time (which `TargetLocalDateTime` deadlines are written in) is the wall
//! time of this clock in its own offset: `--now 2026-12-01T09:30:00+01:00` means 09:30 local.

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, SecondsFormat};

use crate::Error;

/// A calendar date written `YYYY-MM-DD` (as `PostingDate` and `ExpirationDate` are): exactly
/// that shape, and a real day.
#[must_use]
pub(crate) fn parse_date(text: &str) -> Option<chrono::NaiveDate> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped
        .then(|| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

/// `at` as RFC 3339 UTC text, to the second (certificate validity, which the real clock judges).
#[must_use]
pub(crate) fn rfc3339(at: std::time::SystemTime) -> String {
    DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A fixed instant with the device's UTC offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    now: DateTime<FixedOffset>,
}

impl Clock {
    /// The system clock, in the system's local offset.
    #[must_use]
    pub(crate) fn system() -> Self {
        Self {
            now: Local::now().fixed_offset(),
        }
    }

    /// Parses `--now`.
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        DateTime::parse_from_rfc3339(text)
            .map(|now| Self { now })
            .map_err(|e| Error::Usage {
                message: format!("invalid --now `{text}`: {e}"),
                hint: "give an RFC 3339 time, e.g. --now 2026-12-01T09:30:00Z".to_owned(),
            })
    }

    /// The device's local wall time, as `TargetLocalDateTime` deadlines are written.
    #[must_use]
    pub(crate) fn local(&self) -> NaiveDateTime {
        self.now.naive_local()
    }

    /// The instant as RFC 3339 text, to the second (`Z` for UTC).
    #[must_use]
    pub(crate) fn stamp(&self) -> String {
        self.now.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_is_the_wall_time_of_the_given_offset() {
        let clock = Clock::parse("2026-12-01T09:30:00+01:00").unwrap();
        assert_eq!(clock.local().to_string(), "2026-12-01 09:30:00");
        assert_eq!(clock.stamp(), "2026-12-01T09:30:00+01:00");
        assert_eq!(
            Clock::parse("2026-12-01T08:30:00Z").unwrap().stamp(),
            "2026-12-01T08:30:00Z"
        );
    }

    #[test]
    fn rejects_non_rfc3339() {
        let err = Clock::parse("yesterday").unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
