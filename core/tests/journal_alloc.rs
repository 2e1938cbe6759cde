//! Entries that are not about pulls must cost no allocation in the correlator: counted with a
//! global allocator wrapper, on the measuring thread only (the test harness's own threads may
//! allocate at any time).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A counting global allocator is the measurement itself.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use mirrorscope_core::journal::{Correlator, CorrelatorConfig, JournalEntry, StaticResolver};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // const-initialised and without a destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn entry(i: u64, message: &str) -> JournalEntry {
    JournalEntry {
        cursor: format!("c{i}"),
        realtime_usec: 1_795_219_200_000_000 + i * 1000,
        pid: Some(1),
        message: message.to_owned(),
        ..JournalEntry::default()
    }
}

#[test]
fn noise_entries_do_not_allocate() {
    let noise = [
        r#"time="2026-11-21T07:05:01.1Z" level=info msg="Checking image status: registry.k8s.io/pause:3.10" id=0b7e4c4a-55b1-4f7e-9d0c-5b8f3e1a2c10 name=/runtime.v1.ImageService/ImageStatus"#,
        r#"time="2026-11-21T07:05:01.1Z" level=info msg="Image registry.k8s.io/pause:3.10 not found" id=0b7e4c4a-55b1-4f7e-9d0c-5b8f3e1a2c10 name=/runtime.v1.ImageService/ImageStatus"#,
        r#"time="2026-11-21T07:05:01.1Z" level=info msg="Created container 0a1b2c: shop/web-1/web" id=aa11aa11-0000-4000-8000-000000000001 name=/runtime.v1.RuntimeService/CreateContainer"#,
        r#"time="2026-11-21 07:05:01.100000000Z" level=error msg="Failed to stop container: not found""#,
        r#"{"level":"info","msg":"Removed container 0a1b2c","time":"2026-11-21T07:05:01Z"}"#,
        r#"I1121 07:05:01.123456    2213 kubelet.go:2510] "SyncLoop (PLEG): event for pod" pod="shop/web-1" event={"ID":"1","Type":"ContainerStarted"}"#,
        r#"I1121 07:05:01.123456    2213 event.go:389] "Event occurred" object="shop/web-1" kind="Pod" reason="Started" message="Started container web""#,
        r#"E1121 07:05:01.123456    2213 pod_workers.go:1324] "Error syncing pod, skipping" err="network is not ready" pod="shop/web-1""#,
        "\tcontinuation of a value nobody asked for",
        " > key=\"v\"",
        "Started Kubernetes Kubelet.",
        "",
    ];
    let entries: Vec<JournalEntry> = (0..2000u64)
        .map(|i| entry(i, noise[(i as usize) % noise.len()]))
        .collect();
    let mut c = Correlator::new(Box::new(StaticResolver::new()), CorrelatorConfig::default());
    let mut out = Vec::new();
    COUNTING.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for e in &entries {
        c.push(e, &mut out);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "noise entries allocated");
    assert!(out.is_empty());
    assert_eq!(c.stats().entries, 2000);

    // And the counter does see the allocations of a real pull.
    let pull = entry(
        5000,
        r#"time="2026-11-21T07:05:01.1Z" level=info msg="Pulling image: quay.io/a/b:1" id=u1 name=/runtime.v1.ImageService/PullImage"#,
    );
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    c.push(&pull, &mut out);
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > before);
    assert_eq!(c.open_pulls(), 1);
}
