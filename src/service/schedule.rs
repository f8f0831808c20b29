//! Cron schedules as tokio-cron-scheduler reads them: six fields with seconds
//! (`0 */15 * * * *`); a classic five-field expression (`*/15 * * * *`) gets second 0.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// The schedule by default: every 15 minutes, on the quarter hour.
pub const DEFAULT_SCHEDULE: &str = "0 */15 * * * *";

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The six-field expression, as handed to tokio-cron-scheduler.
    expression: String,
    /// The same, parsed as tokio-cron-scheduler parses it.
    cron: Cron,
}

impl Schedule {
    /// Parses a five- or six-field cron expression (seven with a year).
    ///
    /// # Errors
    ///
    /// A message naming what is wrong with the expression.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let expression = match fields.len() {
            5 => format!("0 {}", fields.join(" ")),
            6 | 7 => fields.join(" "),
            n => {
                return Err(format!(
                    "{text:?} has {n} fields; give 6 (sec min hour day month weekday, e.g. \"0 */15 * * * *\") or 5 (min hour day month weekday)"
                ))
            }
        };
        // tokio-cron-scheduler parses with these options; parse the same way so a schedule
        // accepted here is accepted there, and fires at the times computed here.
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&expression)
            .map_err(|e| format!("{text:?} is not a cron expression: {e}"))?;
        Ok(Schedule { expression, cron })
    }

    /// The six-field expression.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first time strictly after `time`.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&time, false).ok()
    }

    /// The newest scheduled time at or before `time`: the identity of the tick that fires
    /// at `time`. Replicas whose clocks agree within the interval compute the same tick.
    pub fn tick_at_or_before(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Scheduled times are whole seconds; a fraction of the clock must not leak into a
        // tick's identity, or replicas name one tick differently.
        let time = time.trunc_subsecs(0);
        let lookback = chrono::Duration::from_std(self.typical_interval() * 2)
            .unwrap_or(chrono::Duration::days(1))
            .max(chrono::Duration::seconds(2));
        let mut tick = None;
        let mut cursor = time - lookback;
        while let Some(next) = self.next_after(cursor) {
            if next > time {
                break;
            }
            tick = Some(next);
            cursor = next;
        }
        tick
    }

    /// The identity of the tick whose firing the scheduler reported at `fired_at`: the
    /// scheduled time nearest to it, in whole seconds. A replica whose scheduler fires a few
    /// milliseconds early or late names the same tick as every other replica.
    pub fn tick_for_firing(&self, fired_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let before = self.tick_at_or_before(fired_at);
        let after = self.next_after(fired_at.trunc_subsecs(0));
        match (before, after) {
            (Some(before), Some(after)) => Some(if fired_at - before <= after - fired_at {
                before
            } else {
                after
            }),
            (before, after) => before.or(after),
        }
    }

    /// The time between the next two occurrences: how often the schedule fires.
    pub fn typical_interval(&self) -> Duration {
        let now = Utc::now();
        match self
            .next_after(now)
            .and_then(|a| self.next_after(a).map(|b| (a, b)))
        {
            Some((a, b)) => (b - a).to_std().unwrap_or(Duration::from_secs(60)),
            None => Duration::from_secs(24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, h, m, s).unwrap()
    }

    #[test]
    fn six_and_five_field_expressions_are_accepted() {
        let six = Schedule::parse("0 */15 * * * *").unwrap();
        assert_eq!(six.next_after(at(5, 3, 0)), Some(at(5, 15, 0)));
        let five = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(five.expression(), "0 */15 * * * *");
        assert_eq!(five.next_after(at(5, 15, 0)), Some(at(5, 30, 0)));
        assert_eq!(six.typical_interval(), Duration::from_secs(900));
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        assert!(Schedule::parse("every 5 minutes")
            .unwrap_err()
            .contains("fields"));
        assert!(Schedule::parse("0 61 * * * *")
            .unwrap_err()
            .contains("not a cron expression"));
    }

    #[test]
    fn a_tick_is_named_by_its_scheduled_time() {
        let schedule = Schedule::parse("0 */15 * * * *").unwrap();
        assert_eq!(schedule.tick_at_or_before(at(5, 15, 0)), Some(at(5, 15, 0)));
        assert_eq!(schedule.tick_at_or_before(at(5, 15, 1)), Some(at(5, 15, 0)));
        assert_eq!(
            schedule.tick_at_or_before(at(5, 29, 59)),
            Some(at(5, 15, 0))
        );
        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(
            every_second.tick_at_or_before(at(5, 0, 7)),
            Some(at(5, 0, 7))
        );
    }

    #[test]
    fn firings_with_fractions_of_a_second_name_the_same_whole_second_tick() {
        let every_ten = Schedule::parse("*/10 * * * * *").unwrap();
        let tick = at(13, 36, 20);
        let ms = chrono::Duration::microseconds;
        // Two replicas' schedulers fire the same tick at different fractions, one even early.
        for fired_at in [
            tick + ms(125_835),
            tick + ms(167_910),
            tick - ms(3_000),
            tick + ms(999_999),
        ] {
            assert_eq!(
                every_ten.tick_for_firing(fired_at),
                Some(tick),
                "{fired_at}"
            );
        }
        assert_eq!(
            every_ten.tick_at_or_before(tick + ms(125_835)),
            Some(tick),
            "no fraction leaks into the tick"
        );
        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(
            every_second.tick_for_firing(at(5, 0, 7) + ms(400_000)),
            Some(at(5, 0, 7))
        );
        assert_eq!(
            every_second.tick_for_firing(at(5, 0, 7) - ms(100_000)),
            Some(at(5, 0, 7))
        );
    }
}
