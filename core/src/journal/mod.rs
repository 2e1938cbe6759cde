//! Journal grammar and pull correlation (issue: pull records from the journal).
