//! Cron schedules of system flows (docs/flows.md), parsed with the maintained `croner` crate:
//! five fields (minute precision) or six (with seconds first), evaluated in UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};

/// A parsed schedule.
#[derive(Clone)]
pub struct Schedule {
    source: String,
    cron: croner::Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.source).finish()
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(source: &str) -> Result<Self, String> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build();
        let cron = parser.parse(source.trim()).map_err(|err| err.to_string())?;
        Ok(Schedule {
            source: source.trim().to_owned(),
            cron,
        })
    }
}

impl Schedule {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first due time strictly after `after` (unix seconds), as unix seconds.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let from: DateTime<Utc> = Utc.timestamp_opt(after, 0).single()?;
        self.cron
            .find_next_occurrence(&from, false)
            .ok()
            .map(|next| next.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_schedules() {
        let every_5_min: Schedule = "*/5 * * * *".parse().unwrap();
        // 2026-01-01T00:02:00Z -> 00:05:00
        assert_eq!(every_5_min.next_after(1_767_225_720), Some(1_767_225_900));
        let every_second: Schedule = "* * * * * *".parse().unwrap();
        assert_eq!(every_second.next_after(100), Some(101));
        assert!("nope".parse::<Schedule>().is_err());
        assert!("61 * * * *".parse::<Schedule>().is_err());
    }
}
