//! `BufferPool`: object buffers kept for reuse.
//!
//! A sealed object's body is a `Bytes` that hands its buffer back to the pool when the last
//! reference is dropped (after the upload, or after forwarding to the abnormal-data topic). The
//! next object then writes into memory that is already mapped: without the pool every object of
//! a few megabytes was a fresh allocation that the kernel had to map, zero and fault in page by
//! page, and unmap again on free (with 1 KiB values, about a sixth of the connector's CPU).
//!
//! Bounded: at most `MAX_IDLE_BUFFERS` idle buffers and `MAX_IDLE_BYTES` of idle capacity (an
//! eighth of the memory budget's buffer share if that is less) are kept; anything more is freed,
//! so a past backlog does not pin its memory for good. Idle capacity is charged to the budget
//! (kind `pooled`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::memory::{Charge, Kind, MemoryBudget};

/// Idle buffers kept, at most.
const MAX_IDLE_BUFFERS: usize = 16;
/// Idle capacity kept, at most (bytes).
const MAX_IDLE_BYTES: usize = 64 << 20;

#[derive(Clone)]
pub struct BufferPool(Arc<Mutex<Idle>>);

struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
    /// The idle capacity in the memory budget.
    charge: Charge,
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool(Arc::new(Mutex::new(Idle {
            buffers: Vec::new(),
            bytes: 0,
            max_bytes: MAX_IDLE_BYTES,
            charge: Charge::none(),
        })))
    }
}

impl BufferPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// A pool whose idle buffers are charged to `budget` and take at most an eighth of its
    /// buffer share.
    pub fn within(budget: &MemoryBudget) -> Self {
        let pool = Self::default();
        {
            let mut idle = pool.lock();
            idle.max_bytes = MAX_IDLE_BYTES.min(budget.buffer_share() / 8);
            idle.charge = budget.charge(Kind::Pooled, 0);
        }
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer: a pooled one if any (grown to `min_capacity` if smaller), else a new one.
    pub fn take(&self, min_capacity: usize) -> Vec<u8> {
        self.take_tracked(min_capacity).0
    }

    /// Like [`take`](Self::take); also says whether the buffer was pooled (its memory is then
    /// resident already, up to its capacity).
    pub fn take_tracked(&self, min_capacity: usize) -> (Vec<u8>, bool) {
        let pooled = {
            let mut idle = self.lock();
            let buffer = idle.buffers.pop();
            if let Some(buffer) = &buffer {
                idle.bytes -= buffer.capacity();
                let bytes = idle.bytes;
                idle.charge.set(bytes);
            }
            buffer
        };
        match pooled {
            Some(mut buffer) => {
                buffer.reserve(min_capacity);
                (buffer, true)
            }
            None => (Vec::with_capacity(min_capacity), false),
        }
    }

    /// `buffer` as `Bytes`; the buffer comes back to the pool when the last clone is dropped.
    pub fn freeze(&self, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buffer,
            pool: self.clone(),
        })
    }

    fn put(&self, mut buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        let mut idle = self.lock();
        if idle.buffers.len() < MAX_IDLE_BUFFERS && idle.bytes + capacity <= idle.max_bytes {
            buffer.clear();
            idle.bytes += capacity;
            idle.buffers.push(buffer);
            let bytes = idle.bytes;
            idle.charge.set(bytes);
        }
    }

    /// Idle buffers and their total capacity (for tests).
    pub fn idle(&self) -> (usize, usize) {
        let idle = self.lock();
        (idle.buffers.len(), idle.bytes)
    }
}

/// The owner behind a pooled `Bytes`.
struct Pooled {
    buffer: Vec<u8>,
    pool: BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_s_buffer_comes_back_once_every_clone_is_dropped() {
        let pool = BufferPool::new();
        let mut buffer = pool.take(1000);
        buffer.extend_from_slice(b"[{\"offset\":1}]");
        let body = pool.freeze(buffer);
        let part = body.slice(1..5);
        assert_eq!(&body[..], b"[{\"offset\":1}]");
        drop(body);
        assert_eq!(pool.idle().0, 0, "a slice still holds the buffer");
        assert_eq!(&part[..], b"{\"of");
        drop(part);
        let (count, bytes) = pool.idle();
        assert_eq!(count, 1);
        assert!(bytes >= 1000);
        let reused = pool.take(10);
        assert!(reused.is_empty(), "handed out empty");
        assert!(reused.capacity() >= 1000, "the same allocation again");
        assert_eq!(pool.idle(), (0, 0));
    }

    #[test]
    fn idle_memory_is_bounded() {
        let pool = BufferPool::new();
        let bodies: Vec<Bytes> = (0..MAX_IDLE_BUFFERS + 4)
            .map(|_| pool.freeze(Vec::with_capacity(1024)))
            .collect();
        drop(bodies);
        assert_eq!(
            pool.idle().0,
            MAX_IDLE_BUFFERS,
            "over the count bound: freed"
        );
        let pool = BufferPool::new();
        drop(pool.freeze(Vec::with_capacity(MAX_IDLE_BYTES + 1)));
        assert_eq!(pool.idle(), (0, 0), "over the byte bound: freed");
    }
}
