//! Keeps every pull record small enough to travel: error texts come from the journal and can be
//! megabytes (a registry answering with an HTML page, a kubelet error repeating every
//! mirror's). Long texts are cut with a marker saying how much was dropped, so a reader of
//! the record knows it is not the whole text.

use mirrorscope_core::journal::PullRecord;

/// Longest text kept in a record field.
pub const MAX_FIELD_BYTES: usize = 16 * 1024;
/// Most attempts kept in a record (a pull tries each location once; more is a runaway).
pub const MAX_ATTEMPTS: usize = 64;

/// The marker ending a cut text.
pub fn marker(dropped: usize) -> String {
    format!(" [truncated by mirrorscope-agent: {dropped} bytes dropped]")
}

/// Cuts `s` to at most [`MAX_FIELD_BYTES`] with the marker (on a character boundary); true
/// when it was cut. A cut text is not cut again.
fn cut(s: &mut String) -> bool {
    if s.len() <= MAX_FIELD_BYTES {
        return false;
    }
    let mut end = MAX_FIELD_BYTES - marker(s.len()).len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = s.len() - end;
    s.truncate(end);
    s.push_str(&marker(dropped));
    true
}

/// Bounds `r` in place; returns how many fields were cut (0: the record is unchanged).
pub fn limit_record(r: &mut PullRecord) -> usize {
    let mut cut_fields = 0;
    for s in [&mut r.image, &mut r.pull_id]
        .into_iter()
        .chain(r.started_at.as_mut())
        .chain(r.error.as_mut())
        .chain(r.pod.as_mut())
        .chain(r.served_by.as_mut())
        .chain(r.digest.as_mut())
        .chain(r.cursor.as_mut())
        .chain(r.blob_source.as_mut())
    {
        cut_fields += usize::from(cut(s));
    }
    if r.attempts.len() > MAX_ATTEMPTS {
        r.attempts.truncate(MAX_ATTEMPTS);
        cut_fields += 1;
    }
    for a in &mut r.attempts {
        cut_fields += usize::from(cut(&mut a.reference));
        if let Some(e) = a.error.as_mut() {
            cut_fields += usize::from(cut(e));
        }
    }
    if r.blob_failures.len() > MAX_ATTEMPTS {
        r.blob_failures.truncate(MAX_ATTEMPTS);
        cut_fields += 1;
    }
    for f in &mut r.blob_failures {
        for s in [&mut f.reference, &mut f.error]
            .into_iter()
            .chain(f.digest.as_mut())
        {
            cut_fields += usize::from(cut(s));
        }
    }
    cut_fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirrorscope_core::journal::{AttemptOutcome, PullAttempt, PullOutcome};

    #[test]
    fn megabyte_errors_are_cut_with_a_marker_and_small_records_stay_as_they_are() {
        let attempt = |error: &str| PullAttempt {
            reference: "m.example/a:1".into(),
            mirror: true,
            outcome: AttemptOutcome::Failed,
            error_class: None,
            error: Some(error.into()),
            tries: 1,
        };
        let mut r = PullRecord {
            outcome: PullOutcome::Failed,
            attempts: vec![attempt(&"é".repeat(600_000)), attempt("short")],
            error: Some("x".repeat(1_000_000)),
            ..PullRecord::started("p", "quay.io/a:1", "")
        };
        let small = r.attempts[1].clone();
        assert_eq!(limit_record(&mut r), 2);
        let e = r.error.as_deref().unwrap();
        assert!(e.len() <= MAX_FIELD_BYTES);
        assert!(e.starts_with("xxxx"));
        let kept = e.bytes().take_while(|&b| b == b'x').count();
        assert!(
            e.ends_with(&marker(1_000_000 - kept)),
            "{}",
            &e[e.len() - 80..]
        );
        assert!(r.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("[truncated by"));
        assert_eq!(r.attempts[1], small);
        let again = r.clone();
        assert_eq!(limit_record(&mut r), 0);
        assert_eq!(r, again);
    }
}
