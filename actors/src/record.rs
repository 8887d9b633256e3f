//! Records as they travel from a partition consumer to its batcher.
//!
//! A poll of the partition queue copies many records at once into one [`RecordChunk`]: keys and
//! values go into a single shared byte arena, and each record keeps only offsets into it. One
//! chunk costs two allocations however many records it holds, instead of two per record.

use std::ops::Range;

use crate::memory::Charge;

/// Where a record's key or value lives in the chunk's arena; `None` for a null key or value.
pub type Slot = Option<Range<u32>>;

/// One record's metadata; its bytes live in the chunk's arena.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    pub offset: i64,
    /// Milliseconds since the epoch, as the broker or producer set it (-1 if absent).
    pub timestamp: i64,
    pub key: Slot,
    pub value: Slot,
    /// This record's headers: a range of [`RecordChunk::headers`] (empty for most records).
    pub headers: Range<u32>,
}

/// One record header; its name and value live in the chunk's arena.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMeta {
    pub name: Range<u32>,
    pub value: Slot,
}

/// Consecutive records of one partition, in offset order.
#[derive(Default)]
pub struct RecordChunk {
    arena: Vec<u8>,
    records: Vec<RecordMeta>,
    headers: Vec<HeaderMeta>,
    /// The chunk's bytes in the memory budget, released with the chunk.
    charge: Charge,
}

impl RecordChunk {
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        RecordChunk {
            arena: Vec::with_capacity(bytes),
            records: Vec::with_capacity(records),
            headers: Vec::new(),
            charge: Charge::none(),
        }
    }

    /// Memory the chunk holds: its arena and record table (capacities).
    pub fn memory_bytes(&self) -> usize {
        self.arena.capacity()
            + self.records.capacity() * std::mem::size_of::<RecordMeta>()
            + self.headers.capacity() * std::mem::size_of::<HeaderMeta>()
    }

    /// Counts the chunk in the memory budget with `charge` (set to its size), until dropped.
    pub fn hold(&mut self, mut charge: Charge) {
        charge.set(self.memory_bytes());
        self.charge = charge;
    }

    /// Appends a record, copying its key and value into the arena.
    ///
    /// # Panics
    /// If the arena would exceed 4 GiB; callers cap chunks far below that.
    pub fn push(&mut self, offset: i64, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.push_with_headers(offset, timestamp, key, value, std::iter::empty());
    }

    /// Appends a record with its headers (`(name, value)` in their original order).
    pub fn push_with_headers<'h>(
        &mut self,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>,
    ) {
        debug_assert!(self.records.last().is_none_or(|last| last.offset < offset));
        let key = key.map(|bytes| self.copy_in(bytes));
        let value = value.map(|bytes| self.copy_in(bytes));
        let first_header = self.headers.len() as u32;
        for (name, header_value) in headers {
            let name = self.copy_in(name);
            let value = header_value.map(|bytes| self.copy_in(bytes));
            self.headers.push(HeaderMeta { name, value });
        }
        self.records.push(RecordMeta {
            offset,
            timestamp,
            key,
            value,
            headers: first_header..self.headers.len() as u32,
        });
    }

    /// A record's headers as `(name, value)` byte slices, in their original order.
    pub fn headers<'a>(
        &'a self,
        record: &'a RecordMeta,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        self.headers[record.headers.start as usize..record.headers.end as usize]
            .iter()
            .map(|header| {
                (
                    &self.arena[header.name.start as usize..header.name.end as usize],
                    self.bytes(&header.value),
                )
            })
    }

    fn copy_in(&mut self, bytes: &[u8]) -> Range<u32> {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        let end = self.arena.len();
        assert!(end <= u32::MAX as usize, "record chunk arena over 4 GiB");
        start as u32..end as u32
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of keys and values held.
    pub fn payload_bytes(&self) -> usize {
        self.arena.len()
    }

    pub fn records(&self) -> &[RecordMeta] {
        &self.records
    }

    /// The bytes of a key or value slot.
    pub fn bytes(&self, slot: &Slot) -> Option<&[u8]> {
        slot.as_ref()
            .map(|range| &self.arena[range.start as usize..range.end as usize])
    }

    /// Removes the last record (its bytes too).
    pub fn pop(&mut self) -> Option<i64> {
        let record = self.records.pop()?;
        let first_header = record.headers.start as usize;
        let arena_start = self
            .headers
            .get(first_header)
            .map(|header| header.name.start)
            .into_iter()
            .chain(record.key.as_ref().map(|range| range.start))
            .chain(record.value.as_ref().map(|range| range.start))
            .min();
        self.headers.truncate(first_header);
        if let Some(start) = arena_start {
            self.arena.truncate(start as usize);
        }
        Some(record.offset)
    }

    /// The record at `offset`, if the chunk holds it (records are in offset order).
    pub fn find(&self, offset: i64) -> Option<&RecordMeta> {
        self.records
            .binary_search_by_key(&offset, |record| record.offset)
            .ok()
            .map(|index| &self.records[index])
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.records.first().map(|record| record.offset)
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.records.last().map(|record| record.offset)
    }

    /// A chunk holding a copy of the record at `index` (key, value, headers, timestamp): what a
    /// failure report carries.
    pub fn single(&self, index: usize) -> RecordChunk {
        let record = &self.records[index];
        let key = self.bytes(&record.key);
        let value = self.bytes(&record.value);
        let mut chunk = RecordChunk::with_capacity(
            1,
            key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len),
        );
        chunk.push_with_headers(
            record.offset,
            record.timestamp,
            key,
            value,
            self.headers(record),
        );
        chunk
    }
}

impl std::fmt::Debug for RecordChunk {
    /// Never prints record contents: they may be sensitive.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordChunk")
            .field("records", &self.records.len())
            .field("first_offset", &self.first_offset())
            .field("last_offset", &self.last_offset())
            .field("payload_bytes", &self.arena.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip_including_nulls_and_empties() {
        let mut chunk = RecordChunk::default();
        chunk.push(5, 100, Some(b"k"), Some(b"value"));
        chunk.push(6, 101, None, Some(b""));
        chunk.push(9, 102, Some(b""), None);
        let records = chunk.records();
        assert_eq!(chunk.bytes(&records[0].key), Some(&b"k"[..]));
        assert_eq!(chunk.bytes(&records[0].value), Some(&b"value"[..]));
        assert_eq!(chunk.bytes(&records[1].key), None);
        assert_eq!(chunk.bytes(&records[1].value), Some(&b""[..]));
        assert_eq!(chunk.bytes(&records[2].key), Some(&b""[..]));
        assert_eq!(chunk.bytes(&records[2].value), None);
        assert_eq!(
            (chunk.first_offset(), chunk.last_offset()),
            (Some(5), Some(9))
        );
        assert_eq!(chunk.payload_bytes(), 6);
        assert_eq!(chunk.headers(&records[0]).count(), 0);
    }

    #[test]
    fn headers_keep_order_duplicates_and_binary_values() {
        let mut chunk = RecordChunk::default();
        chunk.push(1, 0, None, Some(b"a"));
        let headers: [(&[u8], Option<&[u8]>); 3] = [
            (b"h", Some(b"\x00\xff")),
            (b"h", None),
            (b"other", Some(b"")),
        ];
        chunk.push_with_headers(2, 0, Some(b"k"), Some(b"b"), headers.into_iter());
        chunk.push(3, 0, None, None);
        let records = chunk.records();
        assert_eq!(chunk.headers(&records[0]).count(), 0);
        assert_eq!(
            chunk.headers(&records[1]).collect::<Vec<_>>(),
            headers.to_vec()
        );
        assert_eq!(chunk.headers(&records[2]).count(), 0);
        assert_eq!(chunk.bytes(&records[1].value), Some(&b"b"[..]));
        assert_eq!(chunk.find(2).map(|r| r.offset), Some(2));
        assert!(chunk.find(4).is_none());
    }

    #[test]
    fn pop_removes_the_last_record_and_its_bytes() {
        let mut chunk = RecordChunk::default();
        chunk.push(1, 0, Some(b"k1"), Some(b"v1"));
        let bytes_before = chunk.payload_bytes();
        let headers: [(&[u8], Option<&[u8]>); 1] = [(b"h", Some(b"x"))];
        chunk.push_with_headers(2, 0, None, Some(b"v2"), headers.into_iter());
        assert_eq!(chunk.pop(), Some(2));
        assert_eq!(chunk.payload_bytes(), bytes_before);
        chunk.push_with_headers(3, 0, Some(b"k3"), None, headers.into_iter());
        assert_eq!(
            chunk.headers(&chunk.records()[1]).collect::<Vec<_>>(),
            headers.to_vec()
        );
        assert_eq!(chunk.pop(), Some(3));
        assert_eq!(chunk.pop(), Some(1));
        assert_eq!(chunk.payload_bytes(), 0);
        assert_eq!(chunk.pop(), None);
    }
}
