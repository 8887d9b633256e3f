//! The report as a table and one line per finding (for people), or as JSON (`--json`).

use std::fmt::Write;

use serde_json::{json, Value};

use super::compare::{PartitionReport, Report};
use super::ranges::Offsets;

/// Findings of one kind printed before "... and N more": a broken bucket can have thousands.
const LINES_PER_KIND: usize = 20;

/// What was compared, for the heading.
pub struct Context<'a> {
    pub topic: &'a str,
    pub bucket: &'a str,
    pub folder: &'a str,
    pub group: &'a str,
    /// Notes not about one partition (an error topic that does not exist, ...).
    pub notes: &'a [String],
}

pub fn text(report: &Report, context: &Context<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "topic `{}`, group `{}`, bucket `{}`, objects under `{}`{}",
        context.topic,
        context.group,
        context.bucket,
        context.folder,
        if report.deep {
            ", bodies read (--deep)"
        } else {
            ""
        }
    );
    let header = [
        "partition",
        "start",
        "committed",
        "high",
        "objects",
        "stored",
        "routed",
        "missing",
        "duplicated",
        "overlaps",
        "uncommitted",
    ];
    let rows: Vec<[String; 11]> = report.partitions.iter().map(row).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:>width$}"))
            .collect();
        cells.join("  ")
    };
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }

    let mut findings = Findings::default();
    for partition in &report.partitions {
        let p = partition.partition;
        for &(first, last) in partition.missing.ranges() {
            findings.push(
                "missing",
                format!(
                    "partition {p}: offsets {} in no object and no error topic",
                    span(first, last)
                ),
            );
        }
        for duplicate in &partition.duplicated {
            findings.push(
                "duplicated",
                format!(
                    "partition {p}: offsets {} in {}",
                    span(duplicate.first, duplicate.last),
                    duplicate.holders.join(" and ")
                ),
            );
        }
        for overlap in &partition.overlapping {
            findings.push(
                "overlap",
                format!(
                    "partition {p}: {} and {} both claim offsets {}",
                    overlap.keys[0],
                    overlap.keys[1],
                    span(overlap.first, overlap.last)
                ),
            );
        }
    }
    for foreign in &report.foreign {
        findings.push("foreign", format!("{}: {}", foreign.key, foreign.reason));
    }
    for partition in &report.partitions {
        let p = partition.partition;
        for object in &partition.uncommitted {
            findings.push(
                "uncommitted",
                format!(
                    "partition {p}: {} (offsets {}) is past the committed offset{}: a restart's \
                     recovery picks it up",
                    object.key,
                    span(object.first, object.last),
                    partition
                        .committed
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default()
                ),
            );
        }
        for &(first, last) in partition.not_on_broker.ranges() {
            findings.push(
                "not on broker",
                format!(
                    "partition {p}: offsets {} hold no record on the broker (compaction or \
                     transaction markers)",
                    span(first, last)
                ),
            );
        }
        for (offset, locations) in &partition.repeated_routed {
            findings.push(
                "repeated",
                format!(
                    "partition {p}: offset {offset} is in the error topics {} times ({}); they are \
                     at-least-once",
                    locations.len(),
                    locations.join(", ")
                ),
            );
        }
        for note in &partition.notes {
            findings.push("note", format!("partition {p}: {note}"));
        }
    }
    for note in context.notes {
        findings.push("note", note.clone());
    }
    out.push_str(&findings.render());

    if report.is_clean() {
        let _ = writeln!(
            out,
            "clean: every offset up to the committed offsets is in exactly one object or error \
             topic; no overlapping or foreign object"
        );
    } else {
        let _ = writeln!(
            out,
            "NOT CLEAN: {} missing offset(s), {} duplicated offset(s), {} overlapping object \
             pair(s), {} foreign object(s)",
            report.missing(),
            report.duplicated(),
            report.overlapping(),
            report.foreign.len()
        );
    }
    out
}

fn row(partition: &PartitionReport) -> [String; 11] {
    [
        partition.partition.to_string(),
        partition.start.to_string(),
        partition
            .committed
            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        partition.high.to_string(),
        partition.objects.to_string(),
        partition.stored.to_string(),
        partition.routed.to_string(),
        partition.missing.count().to_string(),
        partition
            .duplicated
            .iter()
            .map(|d| (d.last - d.first) as u64 + 1)
            .sum::<u64>()
            .to_string(),
        partition.overlapping.len().to_string(),
        partition.uncommitted.len().to_string(),
    ]
}

/// `5-9 (5)`, or `7` for one offset.
fn span(first: i64, last: i64) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last} ({})", last - first + 1)
    }
}

/// Lines grouped by kind, in the order kinds first appear, each kind capped.
#[derive(Default)]
struct Findings(Vec<(&'static str, Vec<String>)>);

impl Findings {
    fn push(&mut self, kind: &'static str, line: String) {
        match self.0.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, lines)) => lines.push(line),
            None => self.0.push((kind, vec![line])),
        }
    }

    fn render(&self) -> String {
        let width = self.0.iter().map(|(kind, _)| kind.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (kind, lines) in &self.0 {
            for line in lines.iter().take(LINES_PER_KIND) {
                let _ = writeln!(out, "{kind:<width$}  {line}");
            }
            if lines.len() > LINES_PER_KIND {
                let _ = writeln!(
                    out,
                    "{kind:<width$}  ... and {} more (--json lists them all)",
                    lines.len() - LINES_PER_KIND
                );
            }
        }
        out
    }
}

pub fn json(report: &Report, context: &Context<'_>) -> Value {
    let ranges = |offsets: &Offsets| -> Value {
        offsets
            .ranges()
            .iter()
            .map(|&(first, last)| json!({"first": first, "last": last}))
            .collect()
    };
    json!({
        "topic": context.topic,
        "group": context.group,
        "bucket": context.bucket,
        "folder": context.folder,
        "deep": report.deep,
        "clean": report.is_clean(),
        "missing": report.missing(),
        "duplicated": report.duplicated(),
        "overlapping": report.overlapping(),
        "unlabelled": report.unlabelled,
        "foreign": report.foreign.iter().map(|f| json!({"key": f.key, "reason": f.reason})).collect::<Vec<_>>(),
        "notes": context.notes,
        "partitions": report.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "low": p.low,
            "high": p.high,
            "committed": p.committed,
            "start": p.start,
            "objects": p.objects,
            "stored": p.stored,
            "routed": p.routed,
            "missing": ranges(&p.missing),
            "missing_below_low": ranges(&p.missing_below_low),
            "not_on_broker": ranges(&p.not_on_broker),
            "duplicated": p.duplicated.iter().map(|d| json!({"first": d.first, "last": d.last, "holders": d.holders})).collect::<Vec<_>>(),
            "overlapping": p.overlapping.iter().map(|o| json!({"keys": o.keys, "first": o.first, "last": o.last})).collect::<Vec<_>>(),
            "uncommitted": p.uncommitted.iter().map(|s| json!({"key": s.key, "first": s.first, "last": s.last})).collect::<Vec<_>>(),
            "repeated_routed": p.repeated_routed.iter().map(|(offset, locations)| json!({"offset": offset, "locations": locations})).collect::<Vec<_>>(),
            "notes": p.notes,
        })).collect::<Vec<_>>(),
    })
}
