//! Keeps the reader's resident memory bounded while sd-journal walks large journals.
//!
//! sd-journal reads journal files through shared read-only mappings and keeps up to 64 windows
//! of 8 MiB mapped; every page it touched counts in the process's RSS although it is page
//! cache. Dropping those pages from our page tables now and then (`MADV_DONTNEED` on the
//! read-only shared mappings of `*.journal` files) changes nothing for sd-journal: the mapping
//! stays, and a later access faults the page in again from the page cache.

/// Drops the resident pages of journal-file mappings; returns how many mappings were advised.
pub fn release_journal_pages() -> usize {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let mut released = 0;
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(path) = fields.nth(3) else {
            continue;
        };
        // Only read-only shared mappings: nothing in them can be lost by dropping pages.
        if perms != "r--s" || !(path.ends_with(".journal") || path.ends_with(".journal~")) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if end <= start {
            continue;
        }
        // SAFETY: the range is a whole mapping of this process, read-only and shared (backed by
        // the file); MADV_DONTNEED only drops its resident pages, which are re-read from the
        // page cache on the next access. No memory is unmapped or changed.
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if r == 0 {
            released += 1;
        }
    }
    released
}
