//! Cron schedules for periodic jobs: [`Cron`] parses a five-field expression and finds the next
//! time it fires, in UTC.
//!
//! Times are Unix seconds; calendar arithmetic is Howard Hinnant's `days_from_civil` and
//! `civil_from_days`, which are exact for the proleptic Gregorian calendar over any `i64` day.

use std::fmt;

const MINUTES_PER_DAY: i64 = 24 * 60;

/// How many days ahead [`Cron::next_after`] looks. Feb 29 can be 8 years from the last one,
/// across a century year that is not a leap year (2096 to 2104), so 9 years keeps
/// `0 0 29 2 *` firing while still giving up on dates that never come, like Feb 30.
const HORIZON_DAYS: i64 = 9 * 366;

/// A five-field cron expression (`minute hour day-of-month month day-of-week`), in UTC.
///
/// Fields take `*`, numbers, lists (`1,15`), ranges (`1-5`) and steps (`*/15`, `10-40/10`,
/// and `5/15`, meaning 5 through the field's maximum). Months take `JAN`–`DEC` and weekdays
/// `SUN`–`SAT`, in any case; weekday 7 is Sunday as well as 0. The whole expression may instead
/// be one of `@hourly`, `@daily` (or `@midnight`), `@weekly`, `@monthly` or `@yearly` (or
/// `@annually`).
///
/// As in Vixie cron, when both day fields are restricted (neither starts with `*`) a day
/// matches if either does: `0 0 13 * FRI` fires on every 13th and on every Friday.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    /// Bit `n` set when the field allows `n`.
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    /// Sunday is bit 0; a 7 in the expression is folded into it.
    weekdays: u8,
    // Vixie cron chooses between AND and OR of the day fields by how they are written, not by
    // what they match: `*/2` counts as unrestricted although it skips days.
    dom_star: bool,
    dow_star: bool,
    spec: String,
}

impl Cron {
    /// Parses `spec`. Errors are one line naming the field and the bad part, e.g.
    /// "minute field '61': out of range 0-59".
    pub fn parse(spec: &str) -> Result<Cron, String> {
        let spec = spec.trim();
        let Some(name) = spec.strip_prefix('@') else {
            return Self::parse_fields(spec);
        };
        let name = name.to_ascii_lowercase();
        let expanded = match name.as_str() {
            "hourly" => "0 * * * *",
            "daily" | "midnight" => "0 0 * * *",
            "weekly" => "0 0 * * 0",
            "monthly" => "0 0 1 * *",
            "yearly" | "annually" => "0 0 1 1 *",
            _ => {
                return Err(format!(
                    "unknown macro '{spec}': expected @hourly, @daily, @midnight, @weekly, \
                     @monthly, @yearly or @annually"
                ));
            }
        };
        let mut cron = Self::parse_fields(expanded)?;
        cron.spec = format!("@{name}");
        Ok(cron)
    }

    fn parse_fields(spec: &str) -> Result<Cron, String> {
        if spec.is_empty() {
            return Err("empty cron expression: expected 5 fields \
                        (minute hour day-of-month month day-of-week) or a macro like @daily"
                .to_string());
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {} in \
                 '{spec}'",
                fields.len()
            ));
        };
        let weekdays = DAY_OF_WEEK.parse(dow)?;
        Ok(Cron {
            minutes: MINUTE.parse(minute)?,
            hours: HOUR.parse(hour)? as u32,
            days: DAY_OF_MONTH.parse(dom)? as u32,
            months: MONTH.parse(month)? as u16,
            weekdays: ((weekdays | weekdays >> 7) & 0x7f) as u8,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
            spec: fields.iter().map(|f| f.to_ascii_uppercase()).collect::<Vec<_>>().join(" "),
        })
    }

    /// The first time strictly after `after` (Unix seconds, UTC) at which the expression
    /// fires, as Unix seconds (always a whole minute). None only if it never fires within
    /// the next 5 years (e.g. "0 0 30 2 *").
    ///
    /// It in fact looks 9 years ahead, so that `0 0 29 2 *` keeps firing across 2100, which
    /// is not a leap year. It also gives None when the answer would not fit in an `i64`.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        // `div_euclid` rounds down for times before 1970 too, so this is the next whole minute.
        let first = after.div_euclid(60) + 1;
        let mut day = first.div_euclid(MINUTES_PER_DAY);
        let mut from = first.rem_euclid(MINUTES_PER_DAY) as u32;
        let last_day = day + HORIZON_DAYS;
        while day <= last_day {
            let (year, month, dom) = civil_from_days(day);
            if self.months & (1 << month) == 0 {
                day = days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1);
                from = 0;
                continue;
            }
            if self.day_matches(dom, weekday(day))
                && let Some(minute) = self.first_minute_from(from)
            {
                return day.checked_mul(MINUTES_PER_DAY)?.checked_add(minute)?.checked_mul(60);
            }
            day += 1;
            from = 0;
        }
        None
    }

    fn day_matches(&self, dom: u32, weekday: u32) -> bool {
        let dom_ok = self.days & (1 << dom) != 0;
        let dow_ok = self.weekdays & (1 << weekday) != 0;
        if self.dom_star || self.dow_star { dom_ok && dow_ok } else { dom_ok || dow_ok }
    }

    /// The first allowed minute of the day at or after `from` (minutes since midnight).
    fn first_minute_from(&self, from: u32) -> Option<i64> {
        let (hour, minute) = (from / 60, from % 60);
        if self.hours & (1 << hour) != 0
            && let Some(minute) = next_bit(self.minutes, minute)
        {
            return Some(i64::from(hour * 60 + minute));
        }
        let hour = next_bit(u64::from(self.hours), hour + 1)?;
        // Every field allows at least one value, so `minutes` is never 0.
        Some(i64::from(hour * 60 + self.minutes.trailing_zeros()))
    }
}

impl fmt::Display for Cron {
    /// The expression as parsed, with fields separated by single spaces and names in upper
    /// case, or the macro in lower case; parsing it again gives an equal [`Cron`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

/// The lowest set bit of `bits` at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    let above = bits.checked_shr(from)?.checked_shl(from)?;
    (above != 0).then(|| above.trailing_zeros())
}

/// One of the five fields: its name for errors, its range, and the names its values may take.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// `names[i]` stands for `min + i`.
    names: &'static [&'static str],
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY_OF_MONTH: Field = Field { name: "day-of-month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
};
// Up to 7 rather than 6 so that ranges ending on Sunday (`5-7`) can be written the usual way.
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Field {
    fn error(&self, part: &str, message: &str) -> String {
        format!("{} field '{part}': {message}", self.name)
    }

    /// The field as a bitset: bit `n` set when it allows `n`.
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0;
        for item in text.split(',') {
            if item.is_empty() {
                return Err(self.error(text, "empty list item"));
            }
            bits |= self.parse_item(item)?;
        }
        Ok(bits)
    }

    fn parse_item(&self, item: &str) -> Result<u64, String> {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(self.step(step, item)?)),
            None => (item, None),
        };
        let (start, end) = if range == "*" {
            (self.min, self.max)
        } else if let Some((start, end)) = range.split_once('-') {
            let (start, end) = (self.value(start, item)?, self.value(end, item)?);
            if start > end {
                return Err(self.error(range, "range start is after its end"));
            }
            (start, end)
        } else {
            let start = self.value(range, item)?;
            // `a/n` is the usual shorthand for `a-max/n`.
            (start, if step.is_some() { self.max } else { start })
        };
        Ok((start..=end).step_by(step.unwrap_or(1) as usize).fold(0, |bits, v| bits | 1 << v))
    }

    fn step(&self, step: &str, item: &str) -> Result<u32, String> {
        if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(item, "step is not a number"));
        }
        match step.parse::<u32>() {
            Ok(0) => Err(self.error(item, "step must be at least 1")),
            // Such a step matches only the start of its range, so `*/60` is surely a mistake.
            Ok(n) if n <= self.max => Ok(n),
            _ => Err(self.error(item, &format!("step out of range 1-{}", self.max))),
        }
    }

    /// One value: a number or, in the month and day-of-week fields, a name.
    fn value(&self, token: &str, item: &str) -> Result<u32, String> {
        if token.is_empty() {
            return Err(self.error(item, "missing number"));
        }
        if token.bytes().all(|b| b.is_ascii_digit()) {
            return token
                .parse::<u32>()
                .ok()
                .filter(|v| (self.min..=self.max).contains(v))
                .ok_or_else(|| {
                    self.error(token, &format!("out of range {}-{}", self.min, self.max))
                });
        }
        if let Some(i) = self.names.iter().position(|name| name.eq_ignore_ascii_case(token)) {
            return Ok(self.min + i as u32);
        }
        if self.names.is_empty() || !token.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(self.error(token, "not a number"));
        }
        let (first, last) = (self.names[0], self.names[self.names.len() - 1]);
        let message =
            format!("unknown name (expected {}-{} or {first}-{last})", self.min, self.max);
        Err(self.error(token, &message))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Counting years from March puts Feb 29 at the end of the year, so leap days need no
    // special case below.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day)
}

/// 0 for Sunday through 6 for Saturday.
fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (days + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    // Timestamps below were checked with `date -u -d @<seconds>`.
    const DEC_03_2026: i64 = 1_796_256_000; // Thursday 2026-12-03T00:00:00Z
    const DAY: i64 = 86_400;
    const HOUR_SECS: i64 = 3_600;

    fn cron(spec: &str) -> Cron {
        Cron::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn err(spec: &str) -> String {
        Cron::parse(spec).expect_err(spec)
    }

    fn bits(values: &[u32]) -> u64 {
        values.iter().fold(0, |bits, v| bits | 1 << v)
    }

    fn next(spec: &str, after: i64) -> Option<i64> {
        cron(spec).next_after(after)
    }

    #[test]
    fn civil_conversions_match_known_dates() {
        let known = [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (-365, (1969, 1, 1)),
            (11_016, (2000, 2, 29)),
            (20_790, (2026, 12, 3)),
            (47_541, (2100, 3, 1)),
            (-719_468, (0, 3, 1)),
        ];
        for (days, (y, m, d)) in known {
            assert_eq!(civil_from_days(days), (y, m, d), "{days}");
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(DEC_03_2026 / DAY, 20_790);
        for days in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(weekday(0), 4); // Thursday
        assert_eq!(weekday(-1), 3);
        assert_eq!(weekday(DEC_03_2026 / DAY), 4);
    }

    #[test]
    fn parses_star_numbers_lists_and_ranges() {
        let c = cron("* * * * *");
        assert_eq!(c.minutes, (1 << 60) - 1);
        assert_eq!(c.hours, (1 << 24) - 1);
        assert_eq!(c.days, u32::MAX - 1);
        assert_eq!(c.months, 0b1_1111_1111_1110);
        assert_eq!(c.weekdays, 0x7f);
        assert!(c.dom_star && c.dow_star);

        let c = cron("5 0,12 1-3,15 6 2-4");
        assert_eq!(c.minutes, bits(&[5]));
        assert_eq!(u64::from(c.hours), bits(&[0, 12]));
        assert_eq!(u64::from(c.days), bits(&[1, 2, 3, 15]));
        assert_eq!(u64::from(c.months), bits(&[6]));
        assert_eq!(u64::from(c.weekdays), bits(&[2, 3, 4]));
        assert!(!c.dom_star && !c.dow_star);

        // A single-value range and overlapping list items are fine.
        assert_eq!(cron("7-7,5-9,8 * * * *").minutes, bits(&[5, 6, 7, 8, 9]));
    }

    #[test]
    fn parses_steps() {
        assert_eq!(cron("*/15 * * * *").minutes, bits(&[0, 15, 30, 45]));
        assert_eq!(cron("10-40/10 * * * *").minutes, bits(&[10, 20, 30, 40]));
        assert_eq!(cron("10-45/10 * * * *").minutes, bits(&[10, 20, 30, 40]));
        // `a/n` runs to the field's maximum.
        assert_eq!(cron("5/20 * * * *").minutes, bits(&[5, 25, 45]));
        assert_eq!(u64::from(cron("0 20/2 * * *").hours), bits(&[20, 22]));
        assert_eq!(u64::from(cron("0 0 */10 * *").days), bits(&[1, 11, 21, 31]));
        assert_eq!(u64::from(cron("0 0 1 */3 *").months), bits(&[1, 4, 7, 10]));
        assert_eq!(cron("*/59 * * * *").minutes, bits(&[0, 59]));
        assert_eq!(cron("1,*/30 * * * *").minutes, bits(&[0, 1, 30]));
        // Day-of-week runs to 7, which is Sunday again.
        assert_eq!(u64::from(cron("0 0 * * 1/3").weekdays), bits(&[0, 1, 4]));
        assert_eq!(u64::from(cron("0 0 * * */2").weekdays), bits(&[0, 2, 4, 6]));
        // Steps on `*` still count as `*` for the day-of-month/day-of-week rule.
        assert!(cron("0 0 */2 * MON").dom_star);
        assert!(cron("0 0 1 * */2").dow_star);
    }

    #[test]
    fn parses_names_in_any_case() {
        assert_eq!(u64::from(cron("0 0 1 JAN,jul,Dec *").months), bits(&[1, 7, 12]));
        assert_eq!(u64::from(cron("0 0 1 feb-APR *").months), bits(&[2, 3, 4]));
        assert_eq!(u64::from(cron("0 0 1 JAN-DEC/6 *").months), bits(&[1, 7]));
        assert_eq!(u64::from(cron("0 9 * * MON-FRI").weekdays), bits(&[1, 2, 3, 4, 5]));
        assert_eq!(u64::from(cron("0 9 * * sun,Sat").weekdays), bits(&[0, 6]));
        assert_eq!(u64::from(cron("0 9 * * TUE/2").weekdays), bits(&[2, 4, 6]));
        // Names and numbers mix.
        assert_eq!(u64::from(cron("0 0 * * 1,WED,5").weekdays), bits(&[1, 3, 5]));
    }

    #[test]
    fn sunday_is_both_0_and_7() {
        assert_eq!(cron("0 0 * * 0").weekdays, cron("0 0 * * 7").weekdays);
        assert_eq!(cron("0 0 * * 7").weekdays, cron("0 0 * * SUN").weekdays);
        assert_eq!(u64::from(cron("0 0 * * 5-7").weekdays), bits(&[0, 5, 6]));
        assert_eq!(cron("0 0 * * 0-7").weekdays, 0x7f);
        assert_eq!(next("0 0 * * 7", DEC_03_2026), Some(1_796_515_200)); // Sun 2026-12-06
    }

    #[test]
    fn parses_macros() {
        for (alias, fields) in [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
        ] {
            let (a, b) = (cron(alias), cron(fields));
            assert_eq!(
                (a.minutes, a.hours, a.days, a.months, a.weekdays, a.dom_star, a.dow_star),
                (b.minutes, b.hours, b.days, b.months, b.weekdays, b.dom_star, b.dow_star),
                "{alias}"
            );
            assert_eq!(a.to_string(), alias);
        }
        assert_eq!(cron(" @Daily ").to_string(), "@daily");
        assert_eq!(next("@weekly", DEC_03_2026), Some(1_796_515_200)); // Sun 2026-12-06
    }

    #[test]
    fn displays_the_normalized_spec() {
        let c = cron("  */5\t0-6  1,15 jan-mar  mon ");
        assert_eq!(c.to_string(), "*/5 0-6 1,15 JAN-MAR MON");
        assert_eq!(cron(&c.to_string()), c);
        assert_eq!(cron("0 3 * * *").to_string(), "0 3 * * *");
    }

    #[test]
    fn rejects_wrong_field_counts() {
        assert_eq!(
            err("* * * *"),
            "expected 5 fields (minute hour day-of-month month day-of-week), found 4 in \
             '* * * *'"
        );
        assert!(err("* * * * * *").contains("found 6"));
        assert!(err("").starts_with("empty cron expression"));
        assert!(err("   ").starts_with("empty cron expression"));
    }

    #[test]
    fn rejects_unknown_macros() {
        assert!(err("@reboot").starts_with("unknown macro '@reboot'"));
        assert!(err("@daily 0").starts_with("unknown macro '@daily 0'"));
        assert!(err("@").starts_with("unknown macro '@'"));
    }

    #[test]
    fn rejects_empty_list_items() {
        assert_eq!(err("1,,2 * * * *"), "minute field '1,,2': empty list item");
        assert_eq!(err("* 1, * * *"), "hour field '1,': empty list item");
        assert_eq!(err("* * ,1 * *"), "day-of-month field ',1': empty list item");
    }

    #[test]
    fn rejects_bad_steps() {
        assert_eq!(err("*/0 * * * *"), "minute field '*/0': step must be at least 1");
        assert_eq!(err("* 1-5/0 * * *"), "hour field '1-5/0': step must be at least 1");
        assert_eq!(err("*/ * * * *"), "minute field '*/': step is not a number");
        assert_eq!(err("*/x * * * *"), "minute field '*/x': step is not a number");
        assert_eq!(err("*/2/3 * * * *"), "minute field '*/2/3': step is not a number");
        assert_eq!(err("*/60 * * * *"), "minute field '*/60': step out of range 1-59");
        assert_eq!(
            err("*/99999999999 * * * *"),
            "minute field '*/99999999999': step out of range 1-59"
        );
    }

    #[test]
    fn rejects_reversed_ranges() {
        assert_eq!(err("* 5-1 * * *"), "hour field '5-1': range start is after its end");
        assert_eq!(
            err("0 0 * * FRI-MON"),
            "day-of-week field 'FRI-MON': range start is after its end"
        );
        assert_eq!(err("0 0 1 DEC-JAN *"), "month field 'DEC-JAN': range start is after its end");
    }

    #[test]
    fn rejects_out_of_range_values() {
        assert_eq!(err("61 * * * *"), "minute field '61': out of range 0-59");
        assert_eq!(err("60 * * * *"), "minute field '60': out of range 0-59");
        assert_eq!(err("0 24 * * *"), "hour field '24': out of range 0-23");
        assert_eq!(err("0 0 0 * *"), "day-of-month field '0': out of range 1-31");
        assert_eq!(err("0 0 32 * *"), "day-of-month field '32': out of range 1-31");
        assert_eq!(err("0 0 1 13 *"), "month field '13': out of range 1-12");
        assert_eq!(err("0 0 1 0 *"), "month field '0': out of range 1-12");
        assert_eq!(err("0 0 * * 8"), "day-of-week field '8': out of range 0-7");
        assert_eq!(err("1-60 * * * *"), "minute field '60': out of range 0-59");
        assert_eq!(err("5/ * * * *"), "minute field '5/': step is not a number");
        assert_eq!(err("99999999999 * * * *"), "minute field '99999999999': out of range 0-59");
    }

    #[test]
    fn rejects_malformed_values_and_unknown_names() {
        assert_eq!(err("-5 * * * *"), "minute field '-5': missing number");
        assert_eq!(err("5- * * * *"), "minute field '5-': missing number");
        assert_eq!(err("abc * * * *"), "minute field 'abc': not a number");
        assert_eq!(err("* * * * ?"), "day-of-week field '?': not a number");
        assert_eq!(err("*-5 * * * *"), "minute field '*': not a number");
        assert_eq!(err("0 0 JAN * *"), "day-of-month field 'JAN': not a number");
        assert_eq!(
            err("0 0 1 FOO *"),
            "month field 'FOO': unknown name (expected 1-12 or JAN-DEC)"
        );
        assert_eq!(
            err("0 0 * * MONDAY"),
            "day-of-week field 'MONDAY': unknown name (expected 0-7 or SUN-SAT)"
        );
        assert_eq!(
            err("0 0 * JAN-XYZ *"),
            "month field 'XYZ': unknown name (expected 1-12 or JAN-DEC)"
        );
        // Names belong to their own field.
        assert!(err("0 0 * MON *").starts_with("month field 'MON': unknown name"));
    }

    #[test]
    fn every_fifteen_minutes() {
        let spec = "*/15 * * * *";
        assert_eq!(next(spec, DEC_03_2026), Some(DEC_03_2026 + 900));
        assert_eq!(next(spec, DEC_03_2026 + 450), Some(DEC_03_2026 + 900)); // from 00:07:30
        assert_eq!(next(spec, DEC_03_2026 + 899), Some(DEC_03_2026 + 900));
        assert_eq!(next(spec, DEC_03_2026 + 2_700), Some(1_796_259_600)); // 00:45 -> 01:00
        assert_eq!(next(spec, 1_796_341_800), Some(1_796_342_400)); // 23:50 -> Dec 4 00:00
    }

    #[test]
    fn daily_at_three() {
        let spec = "0 3 * * *";
        assert_eq!(next(spec, DEC_03_2026), Some(1_796_266_800)); // 2026-12-03T03:00
        assert_eq!(next(spec, 1_796_266_799), Some(1_796_266_800)); // from 02:59:59
        assert_eq!(next(spec, 1_796_266_800), Some(1_796_353_200)); // 2026-12-04T03:00
        assert_eq!(next(spec, 1_796_266_801), Some(1_796_353_200));
    }

    #[test]
    fn hours_and_minutes_combine() {
        let spec = "30 */6 * * *";
        assert_eq!(next(spec, DEC_03_2026), Some(DEC_03_2026 + 1_800)); // 00:30
        assert_eq!(next(spec, DEC_03_2026 + 1_800), Some(1_796_279_400)); // 06:30
        // Past the last minute of an allowed hour, the next allowed hour's first minute.
        assert_eq!(next("0,30 12 * * *", 1_796_301_000), Some(1_796_301_000 + DAY - 1_800));
        assert_eq!(next("15-16 23 * * *", 1_796_338_800), Some(1_796_338_800 + 900));
    }

    #[test]
    fn first_of_the_month() {
        let spec = "0 0 1 * *";
        assert_eq!(next(spec, DEC_03_2026), Some(1_798_761_600)); // 2027-01-01
        assert_eq!(next(spec, 1_769_860_800), Some(1_769_904_000)); // Jan 31 -> 2026-02-01
        assert_eq!(next("@monthly", DEC_03_2026), Some(1_798_761_600));
    }

    #[test]
    fn named_months_skip_to_the_next_allowed_month() {
        let spec = "0 0 1 JAN,jul *";
        assert_eq!(next(spec, DEC_03_2026), Some(1_798_761_600)); // 2027-01-01
        assert_eq!(next(spec, 1_798_761_600), Some(1_814_400_000)); // 2027-07-01
    }

    #[test]
    fn weekdays_skip_the_weekend() {
        let spec = "0 9 * * MON-FRI";
        // Thursday 00:00 -> Thursday 09:00.
        assert_eq!(next(spec, DEC_03_2026), Some(DEC_03_2026 + 9 * HOUR_SECS));
        // Friday 09:00 -> Monday 2026-12-07 09:00.
        assert_eq!(next(spec, 1_796_374_800), Some(1_796_634_000));
        // Saturday noon -> Monday.
        assert_eq!(next(spec, 1_796_472_000), Some(1_796_634_000));
    }

    #[test]
    fn leap_days() {
        let spec = "0 0 29 2 *";
        assert_eq!(next(spec, DEC_03_2026), Some(1_835_395_200)); // 2028-02-29
        assert_eq!(next(spec, 1_835_395_200), Some(1_961_625_600)); // 2032-02-29
        // 2100 is not a leap year: eight years from 2096 to 2104.
        assert_eq!(next(spec, 3_981_398_400), Some(4_233_686_400)); // 2096-03-01 -> 2104-02-29
        // 2100-02-28 -> 2101-02-01.
        assert_eq!(next("0 0 * 2 *", 4_107_456_000), Some(4_136_659_200));
    }

    #[test]
    fn impossible_dates_never_fire() {
        assert_eq!(next("0 0 30 2 *", DEC_03_2026), None);
        assert_eq!(next("0 0 31 4,6,9,11 *", DEC_03_2026), None);
        // But the day-of-week alternative still fires.
        assert_eq!(next("0 0 30 2 MON", DEC_03_2026), Some(1_801_440_000)); // Mon 2027-02-01
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        let spec = "0 0 13 * FRI";
        assert_eq!(next(spec, DEC_03_2026), Some(1_796_342_400)); // Fri 2026-12-04
        assert_eq!(next(spec, 1_796_947_200), Some(1_797_120_000)); // Fri 11th -> Sun 13th
        assert_eq!(next(spec, 1_797_120_000), Some(1_797_552_000)); // Sun 13th -> Fri 18th
    }

    #[test]
    fn day_of_month_and_day_of_week_when_either_is_star() {
        assert_eq!(next("0 0 13 * *", DEC_03_2026), Some(1_797_120_000)); // Sun 2026-12-13
        assert_eq!(next("0 0 * * FRI", DEC_03_2026), Some(1_796_342_400)); // Fri 2026-12-04
        // `*/2` is odd days only, and it still means both must match: the 4th is a Friday but
        // even, the 11th is a Friday and odd.
        assert_eq!(next("0 0 */2 * FRI", DEC_03_2026), Some(1_796_947_200));
        assert_eq!(next("0 0 13 * */1", DEC_03_2026), Some(1_797_120_000));
    }

    #[test]
    fn rolls_over_the_year_at_the_last_minute() {
        let dec_31_2359 = 1_798_761_540; // 2026-12-31T23:59:00
        let jan_01_2027 = 1_798_761_600;
        assert_eq!(next("* * * * *", dec_31_2359), Some(jan_01_2027));
        assert_eq!(next("* * * * *", dec_31_2359 - 1), Some(dec_31_2359));
        assert_eq!(next("0 0 1 1 *", dec_31_2359 + 59), Some(jan_01_2027));
        assert_eq!(next("@yearly", DEC_03_2026), Some(jan_01_2027));
        assert_eq!(next("59 23 31 12 *", dec_31_2359), Some(1_830_297_540)); // 2027-12-31T23:59
        assert_eq!(next("59 23 31 12 *", dec_31_2359 - 1), Some(dec_31_2359));
    }

    #[test]
    fn result_is_strictly_after_a_firing_time() {
        assert_eq!(next("* * * * *", DEC_03_2026), Some(DEC_03_2026 + 60));
        assert_eq!(next("* * * * *", DEC_03_2026 + 1), Some(DEC_03_2026 + 60));
        assert_eq!(next("* * * * *", DEC_03_2026 - 1), Some(DEC_03_2026));
        assert_eq!(next("0 0 * * *", DEC_03_2026), Some(DEC_03_2026 + DAY));
        assert_eq!(next("0 0 3 12 *", DEC_03_2026), Some(1_827_792_000)); // 2027-12-03
        let c = cron("7,23 */5 * * *");
        let mut t = DEC_03_2026;
        for _ in 0..100 {
            let n = c.next_after(t).unwrap();
            assert!(n > t && n % 60 == 0);
            t = n;
        }
    }

    #[test]
    fn agrees_with_a_minute_by_minute_search() {
        // The skipping in `next_after` must land exactly where checking every minute would.
        let fires = |c: &Cron, t: i64| {
            let (_, month, dom) = civil_from_days(t.div_euclid(DAY));
            let minute_of_day = t.rem_euclid(DAY) / 60;
            let dom_ok = c.days & (1 << dom) != 0;
            let dow_ok = c.weekdays & (1 << weekday(t.div_euclid(DAY))) != 0;
            c.minutes & (1 << (minute_of_day % 60)) != 0
                && c.hours & (1 << (minute_of_day / 60)) != 0
                && c.months & (1 << month) != 0
                && if c.dom_star || c.dow_star { dom_ok && dow_ok } else { dom_ok || dow_ok }
        };
        for spec in [
            "*/7 9-17 * * MON-FRI",
            "59 23 * * *",
            "0,30 */5 1,15,31 * *",
            "0 12 13 * FRI",
            "15 2 */3 JAN,FEB,DEC SAT,SUN",
            "0 0 28-31 * *",
        ] {
            let c = cron(spec);
            // 2026-11-20 to 2027-03-20, across month ends, the new year and February.
            let (start, end) = (DEC_03_2026 - 13 * DAY, DEC_03_2026 + 107 * DAY);
            let expected = (start + 60..end).step_by(60).filter(|&t| fires(&c, t));
            let mut t = start;
            for want in expected {
                t = c.next_after(t).unwrap();
                assert_eq!(t, want, "{spec}");
            }
            assert!(c.next_after(t).unwrap() >= end, "{spec}");
        }
    }

    #[test]
    fn works_before_1970() {
        assert_eq!(next("0 0 1 1 *", -1), Some(0));
        assert_eq!(next("0 0 1 1 *", -31_536_000), Some(0)); // 1969-01-01 -> 1970-01-01
        assert_eq!(next("* * * * *", -61), Some(-60));
        assert_eq!(next("* * * * *", -60), Some(0));
        assert_eq!(next("0 0 * * THU", -DAY), Some(0)); // 1970-01-01 was a Thursday
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        assert_eq!(next("* * * * *", i64::MAX), None);
        assert_eq!(next("0 0 30 2 *", i64::MAX - DAY), None);
        assert!(next("* * * * *", i64::MIN).is_some());
        assert!(next("0 0 29 2 *", i64::MIN).is_some());
    }
}
