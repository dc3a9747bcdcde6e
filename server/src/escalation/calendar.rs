//! The clinic's clock: Norwegian public holidays, which shifts cover an instant on the
//! clinic's local time, and the next working day. Pure functions (the clock is passed in).

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use peerbridge_openapi::escalation::ShiftDay;

/// Norwegian public holidays (helligdager and the two statutory flag days that are days off:
/// 1 and 17 May). Easter comes from `computus`.
pub fn is_public_holiday(day: NaiveDate) -> bool {
    let (m, d) = (day.month(), day.day());
    if matches!((m, d), (1, 1) | (5, 1) | (5, 17) | (12, 25) | (12, 26)) {
        return true;
    }
    let Ok(easter) = computus::gregorian_naive(day.year()) else {
        return false;
    };
    // Maundy Thursday, Good Friday, Easter Sunday and Monday, Ascension, Whit Sunday/Monday.
    [-3, -2, 0, 1, 39, 49, 50]
        .iter()
        .any(|&offset| easter + Duration::days(offset) == day)
}

/// What a local date counts as for shifts: a public holiday, else its weekday.
pub fn day_kind(day: NaiveDate) -> ShiftDay {
    if is_public_holiday(day) {
        return ShiftDay::Holiday;
    }
    match day.weekday() {
        Weekday::Mon => ShiftDay::Mon,
        Weekday::Tue => ShiftDay::Tue,
        Weekday::Wed => ShiftDay::Wed,
        Weekday::Thu => ShiftDay::Thu,
        Weekday::Fri => ShiftDay::Fri,
        Weekday::Sat => ShiftDay::Sat,
        Weekday::Sun => ShiftDay::Sun,
    }
}

const DAYS: [ShiftDay; 8] = [
    ShiftDay::Mon,
    ShiftDay::Tue,
    ShiftDay::Wed,
    ShiftDay::Thu,
    ShiftDay::Fri,
    ShiftDay::Sat,
    ShiftDay::Sun,
    ShiftDay::Holiday,
];

/// A shift's stored day set (bit i: the i-th of Mon … Sun, holiday).
pub fn days_of(bits: i32) -> Vec<ShiftDay> {
    DAYS.iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, d)| *d)
        .collect()
}

/// The stored form of a day set.
pub fn day_bits(days: &[ShiftDay]) -> i32 {
    DAYS.iter()
        .enumerate()
        .filter(|(_, d)| days.contains(d))
        .fold(0, |acc, (i, _)| acc | (1 << i))
}

/// The clinic's time zone; an unknown stored name falls back to Europe/Oslo (names are
/// checked when settings are written).
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(chrono_tz::Europe::Oslo)
}

/// `HH:MM` as minutes after midnight.
pub fn parse_hhmm(text: &str) -> Option<u32> {
    let t = NaiveTime::parse_from_str(text, "%H:%M").ok()?;
    (text.len() == 5).then(|| t.hour() * 60 + t.minute())
}

/// Whether a shift starting on `days` at `start` and ending at `end` (minutes; `end <=
/// start` ends the next day) covers `now` on the clinic's clock.
pub fn covers(days: &[ShiftDay], start: u32, end: u32, tz: Tz, now: DateTime<Utc>) -> bool {
    let local = now.with_timezone(&tz);
    let today = local.date_naive();
    let minute = local.hour() * 60 + local.minute();
    let starts_on = |day: NaiveDate| days.contains(&day_kind(day));
    if start < end {
        return starts_on(today) && (start..end).contains(&minute);
    }
    // Overnight (or 24 hours): the part after `start` today, or the tail of yesterday's.
    let yesterday = today.pred_opt().unwrap_or(today);
    (starts_on(today) && minute >= start) || (starts_on(yesterday) && minute < end)
}

/// `hour`:00 on the clinic's clock on the next working day after `now`'s local date (not a
/// weekend, not a public holiday).
pub fn next_working_day(now: DateTime<Utc>, hour: u32, tz: Tz) -> DateTime<Utc> {
    let mut day = now.with_timezone(&tz).date_naive();
    for _ in 0..30 {
        day = day.succ_opt().unwrap_or(day);
        if !matches!(
            day_kind(day),
            ShiftDay::Sat | ShiftDay::Sun | ShiftDay::Holiday
        ) {
            break;
        }
    }
    day.and_hms_opt(hour, 0, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + Duration::hours(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    fn oslo(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Oslo
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("local time")
            .with_timezone(&Utc)
    }

    #[test]
    fn norwegian_public_holidays_of_2027() {
        // Easter 2027 is 28 March (published calendars).
        let holidays: Vec<NaiveDate> = (0..365)
            .map(|i| date(2027, 1, 1) + Duration::days(i))
            .filter(|d| is_public_holiday(*d))
            .collect();
        assert_eq!(
            holidays,
            vec![
                date(2027, 1, 1),
                date(2027, 3, 25),
                date(2027, 3, 26),
                date(2027, 3, 28),
                date(2027, 3, 29),
                date(2027, 5, 1),
                date(2027, 5, 6),
                date(2027, 5, 16),
                date(2027, 5, 17),
                date(2027, 12, 25),
                date(2027, 12, 26),
            ]
        );
    }

    #[test]
    fn day_shifts_night_shifts_and_holidays() {
        let tz = chrono_tz::Europe::Oslo;
        let weekdays = [
            ShiftDay::Mon,
            ShiftDay::Tue,
            ShiftDay::Wed,
            ShiftDay::Thu,
            ShiftDay::Fri,
        ];
        let day = |now| covers(&weekdays, 8 * 60, 16 * 60, tz, now);
        // Monday 7 December 2026.
        assert!(!day(oslo(2026, 12, 7, 7, 59)));
        assert!(day(oslo(2026, 12, 7, 8, 0)));
        assert!(day(oslo(2026, 12, 7, 15, 59)));
        assert!(!day(oslo(2026, 12, 7, 16, 0)));
        // Sunday, and Friday 25 December (Christmas Day): no weekday shift.
        assert!(!day(oslo(2026, 12, 6, 10, 0)));
        assert!(!day(oslo(2026, 12, 25, 10, 0)));
        // A Friday night shift runs into Saturday morning.
        let night = |now| covers(&[ShiftDay::Fri], 22 * 60, 7 * 60, tz, now);
        assert!(night(oslo(2026, 12, 11, 23, 0)));
        assert!(night(oslo(2026, 12, 12, 6, 59)));
        assert!(!night(oslo(2026, 12, 12, 7, 0)));
        assert!(!night(oslo(2026, 12, 11, 21, 59)));
        // A 24-hour holiday shift.
        let holiday = |now| covers(&[ShiftDay::Holiday], 0, 0, tz, now);
        assert!(holiday(oslo(2026, 12, 25, 3, 0)));
        assert!(holiday(oslo(2026, 12, 26, 23, 59)));
        assert!(!holiday(oslo(2026, 12, 27, 0, 0)));
        // Local clock across the DST change (29 March 2026, 02:00 -> 03:00).
        let sunday = |now| covers(&[ShiftDay::Sun], 9 * 60, 17 * 60, tz, now);
        assert!(sunday(oslo(2026, 3, 29, 9, 0)));
        assert!(!sunday(oslo(2026, 3, 29, 8, 59)));
    }

    #[test]
    fn the_next_working_day_skips_weekends_and_holidays() {
        let tz = chrono_tz::Europe::Oslo;
        // Wednesday 23 December 2026 -> Thursday 24th (Christmas Eve is a working day).
        assert_eq!(
            next_working_day(oslo(2026, 12, 23, 12, 0), 10, tz),
            oslo(2026, 12, 24, 10, 0)
        );
        // Thursday 24th -> Monday 28th (25th, 26th holidays, 27th Sunday).
        assert_eq!(
            next_working_day(oslo(2026, 12, 24, 12, 0), 10, tz),
            oslo(2026, 12, 28, 10, 0)
        );
        // Wednesday before Easter 2027 -> Tuesday after.
        assert_eq!(
            next_working_day(oslo(2027, 3, 24, 12, 0), 9, tz),
            oslo(2027, 3, 30, 9, 0)
        );
    }

    #[test]
    fn times_parse_strictly() {
        assert_eq!(parse_hhmm("07:30"), Some(450));
        assert_eq!(parse_hhmm("23:59"), Some(1439));
        for bad in ["7:30", "24:00", "07:60", "0730", "07:30 ", ""] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
    }
}
