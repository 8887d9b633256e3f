//! `{field}`: a member of the record key or JSON value, confined so that it can never leave its
//! path segment.

use std::fmt::Write;

use super::{FieldSpec, MAX_PART_BYTES};

/// The field's raw text, if the record has it: a JSON string as its text, a number or boolean
/// as written; `None` for null, objects, arrays, a missing member or a body that is not JSON.
pub(super) fn extract(
    spec: &FieldSpec,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Option<String> {
    let bytes = if spec.from_key { key? } else { value? };
    if spec.path.is_empty() {
        return std::str::from_utf8(bytes).ok().map(str::to_owned);
    }
    let json: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut node = &json;
    for name in &spec.path {
        node = node.get(name)?;
    }
    match node {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A value from a record made safe as one path segment: `/`, `\`, `%`, `~`, control characters
/// (NUL included) and every `.` of a `..` run (or a lone `.`) are percent-encoded, so the value
/// can neither add a segment, climb out of the prefix, nor read as a path; one longer than
/// [`MAX_PART_BYTES`] is cut and ends with `~` and 16 hex digits of a hash of the whole value,
/// so distinct long values stay apart.
pub fn confine(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_PART_BYTES * 3));
    let mut chars = raw.chars().peekable();
    let mut previous = None;
    while let Some(ch) = chars.next() {
        let next = chars.peek().copied();
        let escape = match ch {
            '/' | '\\' | '%' | '~' => true,
            '.' => previous == Some('.') || next == Some('.') || raw == ".",
            ch => ch.is_control(),
        };
        if escape {
            let mut buffer = [0; 4];
            for byte in ch.encode_utf8(&mut buffer).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(ch);
        }
        previous = Some(ch);
        if out.len() > 4 * MAX_PART_BYTES {
            break;
        }
    }
    if out.len() <= MAX_PART_BYTES {
        return out;
    }
    let mut cut = MAX_PART_BYTES - 17;
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    // Never split an escape.
    if out.as_bytes()[cut - 1] == b'%' {
        cut -= 1;
    } else if out.as_bytes()[cut - 2] == b'%' {
        cut -= 2;
    }
    out.truncate(cut);
    let _ = write!(out, "~{:016x}", fnv1a(raw.as_bytes()));
    out
}

/// FNV-1a, 64 bits: stable across versions and platforms (keys must be).
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
