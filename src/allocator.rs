//! glibc malloc settings for a long-running process with many threads.
//!
//! glibc gives each thread that contends for the heap an arena of its own (up to 8 per core),
//! and memory freed into an arena stays resident for that arena. Records are allocated on the
//! consumer threads and freed on others, object buffers on the partition threads and freed
//! after upload: with a backlog over 1,000 partitions, peak RSS ran about 90 MiB above what the
//! memory budget counted (343 MiB with a 128 MiB budget). Two arenas brought it to 256 MiB at the
//! same drain rate on 2 cores. Set before any thread starts; `MALLOC_ARENA_MAX` in the
//! environment still wins.
//!
//! A thread also hands free memory back to the kernel every [`TRIM_INTERVAL`] (`malloc_trim`):
//! glibc returns only the top of an arena on its own, so a past burst (a backlog drained over
//! many partitions) otherwise stays resident after the memory budget counted it free.
//!
//! Blocks of [`MMAP_THRESHOLD`] and more (object buffers: 10,000 records of 1 KiB make a 12 MB
//! object in a 16 MiB buffer) are mapped on their own and unmapped when freed. glibc's own
//! threshold starts at 128 KiB but rises to the size of each mapped block freed (up to 32 MiB),
//! after which such buffers come out of the arenas, and the holes that buffers growing by
//! doubling leave there stay resident: with 6 partitions and a 2 GB backlog of 1 KiB records,
//! peak RSS was 258 to 319 MiB with the 128 MiB budget, the arenas holding 250 MB of which
//! 161 MB in use. Fixed at 8 MiB: 202 and 203 MiB, for 0.7 to 0.9 more CPU seconds per 10^6
//! records of 1 KiB (each such buffer is faulted in afresh; docs/performance.md,
//! `backlog-6x2g`). A lower threshold maps the record chunks and librdkafka's fetch buffers too:
//! fixed at 1 MiB, the connector spent about 40% more CPU per record.
//! `MALLOC_MMAP_THRESHOLD_` in the environment still wins.

/// Limits glibc to [`ARENAS`] malloc arenas unless `MALLOC_ARENA_MAX` is set, and fixes its
/// mmap threshold at [`MMAP_THRESHOLD`] unless `MALLOC_MMAP_THRESHOLD_` is set.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above. A threshold set this way no longer moves with the blocks freed.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_INTERVAL);
            // SAFETY: malloc_trim only releases free memory; it is thread-safe.
            unsafe {
                libc::malloc_trim(0);
            }
        });
}

/// How often free memory is handed back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Arenas kept: enough that the partition and upload threads rarely wait for each other's
/// allocations on the machines measured (2 cores), few enough that freed memory is reused.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Blocks this large or larger are mapped on their own (see the module docs).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 8 << 20;
