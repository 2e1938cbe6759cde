//! Keeps the reader's resident memory bounded while sd-journal walks large journals.
//!
//! sd-journal reads journal files through shared read-only mappings and keeps up to 64 windows
//! of 8 MiB mapped; every page it touched counts in the process's RSS although it is page
//! cache. Dropping those pages from our page tables now and then (`MADV_DONTNEED` on the
//! read-only shared mappings of `*.journal` files) changes nothing for sd-journal: the mapping
//! stays, and a later access faults the page in again from the page cache.

/// Resident file-backed memory above which [`release_if_large`] drops journal pages.
const FILE_RSS_LIMIT: u64 = 12 * 1024 * 1024;

/// Drops the journal pages when the process's resident file-backed memory (`shared` in
/// /proc/self/statm) exceeds [`FILE_RSS_LIMIT`]: a cheap check, so it can run often while the
/// (costlier) release, and re-reading released pages, happen only when needed.
pub fn release_if_large() {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return;
    };
    let shared_pages: u64 = statm
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let page = u64::try_from(rustix::param::page_size()).unwrap_or(4096);
    if shared_pages.saturating_mul(page) > FILE_RSS_LIMIT {
        release_journal_pages();
    }
}

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
        let r = unsafe {
            rustix::mm::madvise(
                start as *mut std::ffi::c_void,
                end - start,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
        if r.is_ok() {
            released += 1;
        }
    }
    released
}

/// Hands memory the allocator keeps after a large read back to the system (glibc keeps freed
/// small allocations otherwise, and RSS is what the pod's memory limit sees).
pub fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
