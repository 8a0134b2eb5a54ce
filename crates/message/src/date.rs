//! Dates as Postfix writes them: RFC 5322 dates for Received and Date
//! headers (`Sat, 16 Dec 2007 15:26:47 +0100 (CET)`), the UTC stamp in
//! Message-Id (`20070210142653`), and the syslog stamp of log lines
//! (`Dec 16 15:26:35`).

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tm {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// Seconds east of UTC.
    pub offset: i64,
    /// Time zone abbreviation (`CET`, `UTC`).
    pub zone: String,
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The local time (TZ and /etc/localtime apply) of `secs`.
pub fn local(secs: i64) -> Tm {
    convert(secs, true)
}

/// UTC.
pub fn utc(secs: i64) -> Tm {
    convert(secs, false)
}

fn convert(secs: i64, local: bool) -> Tm {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `tm` is plain old data that localtime_r/gmtime_r fill in; both
    // are the re-entrant variants, reading only `t` and writing only `tm`.
    // tm_zone points into static C library storage valid for the process
    // lifetime (or is null), and is copied out at once.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let ok = if local {
            libc::localtime_r(&t, &mut tm)
        } else {
            libc::gmtime_r(&t, &mut tm)
        };
        if ok.is_null() {
            return convert_fallback(secs);
        }
        let zone = if tm.tm_zone.is_null() {
            "UTC".to_string()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        Tm {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
            weekday: tm.tm_wday as u32,
            offset: tm.tm_gmtoff,
            zone,
        }
    }
}

/// UTC computed by hand, for the impossible case of the C library failing.
fn convert_fallback(secs: i64) -> Tm {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    Tm {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        offset: 0,
        zone: "UTC".to_string(),
    }
}

/// `Sat, 16 Dec 2007 15:26:47 +0100 (CET)` (Postfix's mail_date: the day
/// of the month padded with a space, the zone name in parentheses).
pub fn rfc5322(t: &Tm) -> String {
    let sign = if t.offset < 0 { '-' } else { '+' };
    let off = t.offset.abs();
    format!(
        "{}, {:2} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02} ({})",
        DAYS[t.weekday as usize % 7],
        t.day,
        MONTHS[(t.month as usize + 11) % 12],
        t.year,
        t.hour,
        t.minute,
        t.second,
        off / 3600,
        off % 3600 / 60,
        t.zone
    )
}

/// `20070210142653`: the time part of a Message-Id, in UTC.
pub fn message_id_stamp(secs: i64) -> String {
    let t = utc(secs);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `Sun Dec 16 15:26:47 2007`: asctime(3), the date of an mbox `From `
/// line (day padded with a space).
pub fn asctime(t: &Tm) -> String {
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[t.weekday as usize % 7],
        MONTHS[(t.month as usize + 11) % 12],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

/// `Dec 16 15:26:35`: the syslog time stamp (day padded with a space).
pub fn syslog_stamp(t: &Tm) -> String {
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        MONTHS[(t.month as usize + 11) % 12],
        t.day,
        t.hour,
        t.minute,
        t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // 2007-12-16 14:26:47 UTC.
        let t = utc(1197815207);
        assert_eq!(
            rfc5322(&t),
            format!("Sun, 16 Dec 2007 14:26:47 +0000 ({})", t.zone)
        );
        assert_eq!(message_id_stamp(1197815207), "20071216142647");
        assert_eq!(syslog_stamp(&utc(1196467200)), "Dec  1 00:00:00");
        assert_eq!(asctime(&utc(1196467200)), "Sat Dec  1 00:00:00 2007");
        for secs in [0, 951782400, 1197815207, 4102444800] {
            let t = utc(secs);
            assert_eq!(
                convert_fallback(secs),
                Tm {
                    zone: "UTC".into(),
                    ..t
                }
            );
        }
    }
}
