//! The shared NAB CloudWatch data, chunked as carat stores it.

use std::fmt;
use std::path::{Path, PathBuf};

use carat_core::Point;

/// Seconds in a day: chunks are one per series and UTC day (the default raw window).
pub const DAY: i64 = 86_400;

/// `../shared/data/nab-aws-cloudwatch`, relative to the repository root.
#[must_use]
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab-aws-cloudwatch")
}

/// One CSV file: its name and its chunks (points of one UTC day each, in file order).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub chunks: Vec<Vec<Point>>,
}

impl Series {
    #[must_use]
    pub fn points(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }
}

/// Why the data could not be loaded.
#[derive(Debug)]
pub struct DataError(pub String);

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DataError {}

/// Loads every `*.csv` of `dir`, sorted by file name.
///
/// # Errors
/// A [`DataError`] naming the directory, file and line at fault.
pub fn load(dir: &Path) -> Result<Vec<Series>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        DataError(format!(
            "cannot read data directory {}: {e} (pass DATA_DIR, or put the NAB CloudWatch CSVs there)",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError(format!("no *.csv files in {}", dir.display())));
    }
    files.iter().map(|f| load_file(f)).collect()
}

fn load_file(path: &Path) -> Result<Series, DataError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| DataError(format!("{}: {e}", path.display())))?;
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let bad = |what: &str| DataError(format!("{}:{}: {what}: {line:?}", path.display(), i + 1));
        let (t, v) = line.split_once(',').ok_or_else(|| bad("no comma"))?;
        let time = parse_utc(t).ok_or_else(|| bad("bad timestamp"))?;
        let value: f64 = v.parse().map_err(|_| bad("bad value"))?;
        points.push(Point::new(time, value));
    }
    let name = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    Ok(Series {
        name,
        chunks: chunk_by_day(&points),
    })
}

/// Cuts points (in file order) into runs of one UTC day.
#[must_use]
pub fn chunk_by_day(points: &[Point]) -> Vec<Vec<Point>> {
    let mut chunks: Vec<Vec<Point>> = Vec::new();
    let mut day = None;
    for &p in points {
        let d = p.time.div_euclid(DAY);
        if day != Some(d) {
            chunks.push(Vec::new());
            day = Some(d);
        }
        if let Some(c) = chunks.last_mut() {
            c.push(p);
        }
    }
    chunks
}

/// Epoch seconds of `YYYY-MM-DD HH:MM:SS`, read as UTC.
#[must_use]
pub fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * DAY + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_cuts_days() {
        assert_eq!(parse_utc("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_utc("2014-04-10 00:04:00"), Some(1_397_088_240));
        assert_eq!(parse_utc("2014-04-10T00:04:00"), None);
        let pts = [
            Point::new(DAY - 1, 1.0),
            Point::new(DAY, 2.0),
            Point::new(DAY, 3.0),
        ];
        let chunks = chunk_by_day(&pts);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2]);
    }
}
