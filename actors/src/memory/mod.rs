//! `MemoryBudget`: one budget (`memory.max_bytes`) for the record data the process holds.
//!
//! Every hop of the pipeline is bounded per partition (the batcher's mailbox, the upload queue,
//! librdkafka's pre-fetch queue), but with hundreds of partitions and a backlog the sum is not.
//! The budget bounds the sum. It is split in two shares:
//!
//! - **prefetch** (a quarter): what librdkafka may pre-fetch. It cannot be metered record by
//!   record, so it is enforced by sizing librdkafka's queues from the share and the topic's
//!   partition count at start ([`prefetch`]); its gauge is an estimate from librdkafka's
//!   statistics (the bytes in its fetch queues).
//! - **buffers** (the rest): record chunks on their way to the batchers, open objects, sealed
//!   objects waiting for an uploader, objects being uploaded, and idle pooled buffers. Each is a
//!   [`Charge`] of its [`Kind`], released when the memory is (a chunk's charge travels with the
//!   chunk, a sealed object's with the object).
//!
//! A partition consumer asks for a grant ([`MemoryBudget::admit`]) before it reads its queue and
//! reads at most that much. When the buffer share is used up it is not admitted: it waits in a
//! FIFO queue, its records stay in librdkafka's (bounded) queue, and librdkafka stops fetching
//! the partition once that queue is full: the existing backpressure, driven by memory instead of
//! a full mailbox. As charges are released the waiters are woken in order, so no partition
//! starves. Meanwhile the supervisor seals the largest open objects early (seal reason `memory`)
//! so that uploads can free memory ([`MemoryBudget::seal_candidates`]).
//!
//! Accounting follows what is resident: a chunk's capacity, an object's content or, for a reused
//! pooled buffer, its whole capacity (touched by earlier objects), idle pooled capacity.

pub mod fetch;
pub mod gauges;
pub mod prefetch;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The smallest grant a consumer reads with: less free memory than this and it waits.
pub const MIN_GRANT: usize = 64 * 1024;
/// What a woken waiter is expected to take (a consumer's chunk, at most).
const EXPECTED_GRANT: usize = 1 << 20;

/// What a charge holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Record chunks read from librdkafka, not yet encoded.
    Chunks,
    /// Open objects' buffers.
    Open,
    /// Sealed objects waiting for an uploader (or for their dead-letter acknowledgements).
    Sealed,
    /// Objects an uploader is storing.
    Uploading,
    /// Idle object buffers kept for reuse.
    Pooled,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Chunks,
        Kind::Open,
        Kind::Sealed,
        Kind::Uploading,
        Kind::Pooled,
    ];

    /// The `kind` label of the used-bytes gauge.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Chunks => "chunks",
            Kind::Open => "open",
            Kind::Sealed => "sealed",
            Kind::Uploading => "uploading",
            Kind::Pooled => "pooled",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The shared budget. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBudget(Arc<Inner>);

struct Inner {
    total: usize,
    prefetch_share: usize,
    buffer_share: usize,
    /// Bytes held, by [`Kind::index`].
    used: [AtomicUsize; 5],
    /// The sum of `used`.
    in_use: AtomicUsize,
    /// librdkafka's fetch queues, from its statistics.
    prefetch_estimate: AtomicUsize,
    /// Waiters queued or woken (read without the lock on every release).
    waiting: AtomicUsize,
    queue: Mutex<Queue>,
    /// Open bytes by partition, for choosing what to seal early.
    open: Mutex<HashMap<i32, OpenSlot>>,
    /// Which partitions librdkafka may fetch for.
    fetch: Mutex<fetch::FetchSlots>,
    next_waiter: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// Waiting for memory, in order of arrival.
    waiting: VecDeque<Arc<Waiter>>,
    /// Ids in `waiting`.
    queued: HashSet<u64>,
    /// Taken off the queue by a release and told to try again: admitted before newcomers.
    woken: HashSet<u64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct OpenSlot {
    bytes: usize,
    /// A `memory` seal was asked for and not handled yet.
    seal_requested: bool,
}

/// A partition consumer's place in the queue for memory.
pub struct Waiter {
    id: u64,
    partition: i32,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl Waiter {
    pub fn partition(&self) -> i32 {
        self.partition
    }
}

/// The budget's figures at one moment (for the gauges and the seal decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub total: usize,
    pub prefetch_share: usize,
    pub buffer_share: usize,
    /// By [`Kind::ALL`] order.
    pub used: [usize; 5],
    pub in_use: usize,
    pub prefetch_estimate: usize,
    /// Partitions waiting for memory.
    pub paused: usize,
    /// Partitions waiting for a fetch slot.
    pub fetch_waiting: usize,
    /// Fetch slots.
    pub fetch_slots: usize,
}

impl Snapshot {
    pub fn used(&self, kind: Kind) -> usize {
        self.used[kind.index()]
    }
}

impl MemoryBudget {
    /// A budget of `total` bytes: a quarter for librdkafka's pre-fetching, the rest for buffers.
    pub fn new(total: usize) -> Self {
        let prefetch_share = total / 4;
        MemoryBudget(Arc::new(Inner {
            total,
            prefetch_share,
            buffer_share: total - prefetch_share,
            used: Default::default(),
            in_use: AtomicUsize::new(0),
            prefetch_estimate: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            queue: Mutex::default(),
            open: Mutex::default(),
            fetch: Mutex::new(fetch::FetchSlots::new(prefetch_share)),
            next_waiter: AtomicU64::new(0),
        }))
    }

    /// No practical limit (tests that are not about memory).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX / 2)
    }

    pub fn total(&self) -> usize {
        self.0.total
    }

    pub fn prefetch_share(&self) -> usize {
        self.0.prefetch_share
    }

    pub fn buffer_share(&self) -> usize {
        self.0.buffer_share
    }

    /// Bytes held in the buffer share, all kinds.
    pub fn in_use(&self) -> usize {
        self.0.in_use.load(Ordering::Acquire)
    }

    fn free(&self) -> usize {
        self.0.buffer_share.saturating_sub(self.in_use())
    }

    pub fn snapshot(&self) -> Snapshot {
        let used = Kind::ALL.map(|kind| self.0.used[kind.index()].load(Ordering::Acquire));
        Snapshot {
            total: self.0.total,
            prefetch_share: self.0.prefetch_share,
            buffer_share: self.0.buffer_share,
            used,
            in_use: self.in_use(),
            prefetch_estimate: self.0.prefetch_estimate.load(Ordering::Acquire),
            paused: self.lock_queue().waiting.len(),
            fetch_waiting: self.fetch_waiting(),
            fetch_slots: self.lock_fetch().slots,
        }
    }

    /// librdkafka's fetch queues hold `bytes` (from its statistics).
    pub fn set_prefetch_estimate(&self, bytes: usize) {
        self.0.prefetch_estimate.store(bytes, Ordering::Release);
    }

    /// A charge of `bytes` of `kind`, released when dropped. Not admission-checked: for memory
    /// that is already held (an object's buffer growing as records are encoded).
    pub fn charge(&self, kind: Kind, bytes: usize) -> Charge {
        self.add(kind, bytes);
        Charge {
            budget: Some(self.clone()),
            kind,
            bytes,
        }
    }

    pub(crate) fn add(&self, kind: Kind, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.0.used[kind.index()].fetch_add(bytes, Ordering::AcqRel);
        self.0.in_use.fetch_add(bytes, Ordering::AcqRel);
    }

    pub(crate) fn sub(&self, kind: Kind, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.0.used[kind.index()].fetch_sub(bytes, Ordering::AcqRel);
        self.0.in_use.fetch_sub(bytes, Ordering::AcqRel);
        if self.0.waiting.load(Ordering::Acquire) > 0 {
            self.wake_waiters();
        }
    }

    fn shift(&self, from: Kind, to: Kind, bytes: usize) {
        self.0.used[from.index()].fetch_sub(bytes, Ordering::AcqRel);
        self.0.used[to.index()].fetch_add(bytes, Ordering::AcqRel);
    }

    /// A place in the queue for memory; `wake` is called (on any thread) when memory freed up
    /// and the waiter should call [`admit`](Self::admit) again. Keep it tiny.
    pub fn waiter(&self, partition: i32, wake: impl Fn() + Send + Sync + 'static) -> Arc<Waiter> {
        Arc::new(Waiter {
            id: self.0.next_waiter.fetch_add(1, Ordering::Relaxed),
            partition,
            wake: Box::new(wake),
        })
    }

    /// A grant of up to `want` bytes of chunks to read with (at least [`MIN_GRANT`], or `want`
    /// if smaller), or `None`: the waiter is queued and woken when memory frees up. While anyone
    /// waits, only the queue's head and woken waiters are admitted, so newcomers cannot overtake
    /// (no starvation).
    pub fn admit(&self, waiter: &Arc<Waiter>, want: usize) -> Option<Charge> {
        let mut queue = self.lock_queue();
        let free = self.free();
        let needed = want.min(MIN_GRANT);
        let woken = queue.woken.contains(&waiter.id);
        // Woken waiters go first; then the head of the queue.
        let head = queue.woken.is_empty()
            && queue
                .waiting
                .front()
                .is_none_or(|first| first.id == waiter.id);
        if free >= needed && (woken || head) {
            if queue.woken.remove(&waiter.id) {
                self.0.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            if queue.queued.remove(&waiter.id) {
                queue.waiting.retain(|queued| queued.id != waiter.id);
                self.0.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            drop(queue);
            return Some(self.charge(Kind::Chunks, want.min(free)));
        }
        if queue.woken.remove(&waiter.id) {
            // Woken, but the memory went elsewhere: first in line again.
            queue.queued.insert(waiter.id);
            queue.waiting.push_front(waiter.clone());
        } else if queue.queued.insert(waiter.id) {
            queue.waiting.push_back(waiter.clone());
            self.0.waiting.fetch_add(1, Ordering::AcqRel);
        }
        None
    }

    /// The waiter gives up its place (its consumer stopped).
    pub fn forget(&self, waiter: &Arc<Waiter>) {
        let mut queue = self.lock_queue();
        let mut removed = queue.woken.remove(&waiter.id);
        if queue.queued.remove(&waiter.id) {
            queue.waiting.retain(|queued| queued.id != waiter.id);
            removed = true;
        }
        if removed {
            self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        drop(queue);
        // Its turn passes on.
        self.wake_waiters();
    }

    /// Wakes waiters from the head of the queue, as many as the free memory may admit.
    fn wake_waiters(&self) {
        let woken: Vec<Arc<Waiter>> = {
            let mut queue = self.lock_queue();
            let mut free = self.free();
            let mut woken = Vec::new();
            while free >= MIN_GRANT {
                let Some(waiter) = queue.waiting.pop_front() else {
                    break;
                };
                queue.queued.remove(&waiter.id);
                queue.woken.insert(waiter.id);
                free = free.saturating_sub(EXPECTED_GRANT);
                woken.push(waiter);
            }
            woken
        };
        for waiter in woken {
            (waiter.wake)();
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.0.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_open(&self) -> MutexGuard<'_, HashMap<i32, OpenSlot>> {
        self.0.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_fetch(&self) -> MutexGuard<'_, fetch::FetchSlots> {
        self.0.fetch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fetch slot for `waiter` ([`fetch`]), or `false`: it is queued, and woken when a slot
    /// is free for it.
    ///
    /// When it takes a slot and more are free, the next waiter is woken too: a release wakes
    /// only the head of the queue, so slots freed while the head had not taken its own yet
    /// would otherwise stay free until the consumers' safety tick.
    pub fn acquire_fetch(&self, waiter: &Arc<Waiter>) -> bool {
        let mut slots = self.lock_fetch();
        if !slots.acquire(waiter) {
            return false;
        }
        let next = slots.next();
        drop(slots);
        if let Some(next) = next {
            (next.wake)();
        }
        true
    }

    /// Gives the waiter's fetch slot (or its place in the queue) up; `requeue`: it waits for a
    /// slot again, at the back. The next waiter is woken.
    pub fn release_fetch(&self, waiter: &Arc<Waiter>, requeue: bool) {
        let next = self.lock_fetch().release(waiter, requeue);
        if let Some(next) = next {
            (next.wake)();
        }
    }

    /// At most `partitions` fetch slots: librdkafka's queues were sized for that many
    /// partitions' slice of the prefetch share each, so however many partitions the topic has
    /// later (added while running), at most that many fetch at once and pre-fetching stays
    /// within its share. This may go below [`fetch::MIN_SLOTS`] (a topic of one to three
    /// partitions at start, each sized for a third to all of the share).
    pub fn limit_fetch_slots(&self, partitions: usize) {
        let mut slots = self.lock_fetch();
        slots.slots = slots.slots.min(partitions.max(1));
    }

    /// Partitions waiting for a fetch slot.
    pub fn fetch_waiting(&self) -> usize {
        self.lock_fetch().waiting.len()
    }

    /// The partition's open object now holds `bytes` (0: none). For choosing what to seal.
    pub fn set_open(&self, partition: i32, bytes: usize) {
        let mut open = self.lock_open();
        if bytes == 0 {
            open.remove(&partition);
        } else {
            open.entry(partition).or_default().bytes = bytes;
        }
    }

    /// The partition's batcher handled (or dropped) a requested `memory` seal.
    pub fn seal_handled(&self, partition: i32) {
        if let Some(slot) = self.lock_open().get_mut(&partition) {
            slot.seal_requested = false;
        }
    }

    /// Partitions whose open objects should be sealed now to free memory, each marked as asked
    /// (so it is asked at most once until it handled it): none unless consumers wait for
    /// memory; then the largest open objects (at least `min_bytes` each) until what is sealed,
    /// in upload or asked for makes half the buffer share.
    pub fn seal_candidates(&self, min_bytes: usize) -> Vec<i32> {
        let snapshot = self.snapshot();
        if snapshot.paused == 0 && self.free() >= MIN_GRANT {
            return Vec::new();
        }
        let moving = snapshot.used(Kind::Sealed) + snapshot.used(Kind::Uploading);
        let mut open = self.lock_open();
        let asked: usize = open
            .values()
            .filter(|slot| slot.seal_requested)
            .map(|slot| slot.bytes)
            .sum();
        let mut missing = (snapshot.buffer_share / 2).saturating_sub(moving + asked);
        let mut largest: Vec<(i32, usize)> = open
            .iter()
            .filter(|(_, slot)| !slot.seal_requested && slot.bytes >= min_bytes)
            .map(|(partition, slot)| (*partition, slot.bytes))
            .collect();
        largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut chosen = Vec::new();
        for (partition, bytes) in largest {
            if missing == 0 {
                break;
            }
            missing = missing.saturating_sub(bytes);
            if let Some(slot) = open.get_mut(&partition) {
                slot.seal_requested = true;
            }
            chosen.push(partition);
        }
        chosen
    }
}

/// Bytes of one [`Kind`] held; released when dropped.
pub struct Charge {
    budget: Option<MemoryBudget>,
    kind: Kind,
    bytes: usize,
}

impl Charge {
    /// Charges nothing (tests, objects built outside a budget).
    pub fn none() -> Self {
        Charge {
            budget: None,
            kind: Kind::Chunks,
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The memory held is now `bytes`.
    pub fn set(&mut self, bytes: usize) {
        if let Some(budget) = &self.budget {
            if bytes > self.bytes {
                budget.add(self.kind, bytes - self.bytes);
            } else {
                budget.sub(self.kind, self.bytes - bytes);
            }
        }
        self.bytes = bytes;
    }

    /// The same memory, now held as `kind` (a sealed object's body, taken by an uploader).
    pub fn move_to(&mut self, kind: Kind) {
        if let Some(budget) = &self.budget {
            budget.shift(self.kind, kind, self.bytes);
        }
        self.kind = kind;
    }
}

impl Default for Charge {
    fn default() -> Self {
        Charge::none()
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charge({:?}, {})", self.kind, self.bytes)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.sub(self.kind, self.bytes);
        }
    }
}
