//! The time parts of keys: named fixed-offset zones, record timestamps in a zone, buckets, and
//! civil dates (days since 1970).

use super::{Granularity, DAY_MS, HOUR_MS, MAX_TIMESTAMP_MS, MINUTE_MS};

/// Zone IDs with one offset all year (no daylight saving, none since the 1990s), accepted by
/// name: the zones most OSS regions are in. Others are written as their offset.
pub(super) const FIXED_ZONES: &[(&str, &str)] = &[
    ("Asia/Shanghai", "+08:00"),
    ("Asia/Chongqing", "+08:00"),
    ("PRC", "+08:00"),
    ("Asia/Hong_Kong", "+08:00"),
    ("Asia/Macau", "+08:00"),
    ("Asia/Taipei", "+08:00"),
    ("Asia/Singapore", "+08:00"),
    ("Asia/Kuala_Lumpur", "+08:00"),
    ("Asia/Manila", "+08:00"),
    ("Asia/Urumqi", "+06:00"),
    ("Asia/Tokyo", "+09:00"),
    ("Asia/Seoul", "+09:00"),
    ("Asia/Jakarta", "+07:00"),
    ("Asia/Bangkok", "+07:00"),
    ("Asia/Kolkata", "+05:30"),
    ("Asia/Calcutta", "+05:30"),
    ("Asia/Dubai", "+04:00"),
    ("Asia/Riyadh", "+03:00"),
    ("Etc/UTC", "+00:00"),
    ("GMT", "+00:00"),
];

/// `UTC`, `±HH:MM` or a zone of [`FIXED_ZONES`], in milliseconds east of UTC.
pub(super) fn parse_zone(zone: &str) -> Option<i64> {
    if zone == "UTC" || zone == "Z" {
        return Some(0);
    }
    if let Some((_, offset)) = FIXED_ZONES.iter().find(|(name, _)| *name == zone) {
        return parse_zone(offset);
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours <= 14 && minutes < 60).then_some(sign * (hours * HOUR_MS + minutes * MINUTE_MS))
}

pub(super) fn canonical_number(digits: &str) -> Option<i32> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// The record timestamp as local milliseconds, kept within 1970-01-01T00:00 ..
/// 9999-12-31T23:59:59.999 so every part has its fixed width.
pub(super) fn local_ms(timestamp: i64, offset_ms: i64) -> i64 {
    (timestamp.clamp(0, MAX_TIMESTAMP_MS) + offset_ms).clamp(0, MAX_TIMESTAMP_MS)
}

pub(super) fn bucket(local: i64, granularity: Granularity) -> i64 {
    match granularity {
        Granularity::Minute => local - local % MINUTE_MS,
        Granularity::Hour => local - local % HOUR_MS,
        Granularity::Day => local - local % DAY_MS,
        Granularity::Month | Granularity::Year => {
            let (y, m, _) = civil_from_days(local / DAY_MS);
            let m = if granularity == Granularity::Year {
                1
            } else {
                m
            };
            days_from_civil(y, m, 1) * DAY_MS
        }
    }
}

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's algorithm).
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
