use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

const MIB: usize = 1 << 20;

fn counting_waiter(budget: &MemoryBudget, partition: i32) -> (Arc<Waiter>, Arc<AtomicUsize>) {
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let waiter = budget.waiter(partition, move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (waiter, wakes)
}

#[test]
fn the_budget_is_split_into_a_prefetch_and_a_buffer_share() {
    let budget = MemoryBudget::new(128 * MIB);
    assert_eq!(budget.prefetch_share(), 32 * MIB);
    assert_eq!(budget.buffer_share(), 96 * MIB);
    assert_eq!(budget.total(), 128 * MIB);
}

#[test]
fn charges_are_counted_by_kind_and_released_when_dropped() {
    let budget = MemoryBudget::new(64 * MIB);
    let mut open = budget.charge(Kind::Open, 1000);
    let chunk = budget.charge(Kind::Chunks, 500);
    assert_eq!(budget.in_use(), 1500);
    open.set(3000);
    assert_eq!(budget.snapshot().used(Kind::Open), 3000);
    open.move_to(Kind::Sealed);
    let snapshot = budget.snapshot();
    assert_eq!(snapshot.used(Kind::Open), 0);
    assert_eq!(snapshot.used(Kind::Sealed), 3000);
    assert_eq!(snapshot.in_use, 3500);
    drop(open);
    drop(chunk);
    assert_eq!(budget.in_use(), 0);
    assert_eq!(budget.snapshot().used, [0; 5]);
}

#[test]
fn a_consumer_is_granted_at_most_what_is_free() {
    let budget = MemoryBudget::new(4 * MIB); // buffer share 3 MiB
    let (waiter, _) = counting_waiter(&budget, 0);
    let _held = budget.charge(Kind::Open, 2 * MIB + MIB / 2);
    let grant = budget.admit(&waiter, MIB).expect("half a MiB is free");
    assert_eq!(grant.bytes(), MIB / 2);
    assert_eq!(grant.kind(), Kind::Chunks);
    assert_eq!(budget.in_use(), 3 * MIB);
    // Nothing left: the next one waits.
    let (other, _) = counting_waiter(&budget, 1);
    assert!(budget.admit(&other, MIB).is_none());
    assert_eq!(budget.snapshot().paused, 1);
}

#[test]
fn waiters_are_woken_in_order_as_memory_frees_and_newcomers_do_not_overtake() {
    let budget = MemoryBudget::new(4 * MIB); // buffer share 3 MiB
    let full = budget.charge(Kind::Uploading, 3 * MIB);
    let waiters: Vec<_> = (0..3).map(|p| counting_waiter(&budget, p)).collect();
    for (waiter, _) in &waiters {
        assert!(budget.admit(waiter, MIB).is_none());
    }
    assert_eq!(budget.snapshot().paused, 3);

    // An upload ends: 1 MiB frees, enough for the head of the queue only.
    let mut full = full;
    full.set(2 * MIB);
    assert_eq!(waiters[0].1.load(Ordering::SeqCst), 1, "the head is woken");
    assert_eq!(waiters[1].1.load(Ordering::SeqCst), 0);
    // A newcomer (or a waiter not woken) does not overtake the woken head.
    let (newcomer, _) = counting_waiter(&budget, 9);
    assert!(budget.admit(&newcomer, MIB).is_none());
    assert!(budget.admit(&waiters[1].0, MIB).is_none());
    let grant = budget.admit(&waiters[0].0, MIB).expect("the woken head");
    assert_eq!(grant.bytes(), MIB);

    // Everything frees: the rest are woken, in order, and admitted; the newcomer queued last.
    drop(full);
    drop(grant);
    for (waiter, wakes) in &waiters[1..] {
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert!(budget.admit(waiter, MIB).is_some());
    }
    assert!(budget.admit(&newcomer, MIB).is_some());
    assert_eq!(budget.snapshot().paused, 0);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_woken_waiter_that_finds_the_memory_gone_is_first_in_line_again() {
    let budget = MemoryBudget::new(4 * MIB);
    let mut held = budget.charge(Kind::Sealed, 3 * MIB);
    let (first, _) = counting_waiter(&budget, 0);
    let (second, _) = counting_waiter(&budget, 1);
    assert!(budget.admit(&first, MIB).is_none());
    assert!(budget.admit(&second, MIB).is_none());
    held.set(3 * MIB - MIN_GRANT);
    // Taken by an object's growth before the woken head came.
    let _growth = budget.charge(Kind::Open, MIN_GRANT);
    assert!(budget.admit(&first, MIB).is_none());
    drop(_growth);
    assert!(budget.admit(&second, MIB).is_none(), "not before the first");
    assert!(budget.admit(&first, MIB).is_some());
}

#[test]
fn a_forgotten_waiter_passes_its_turn_on() {
    let budget = MemoryBudget::new(4 * MIB);
    let held = budget.charge(Kind::Sealed, 3 * MIB);
    let (gone, _) = counting_waiter(&budget, 0);
    let (next, next_wakes) = counting_waiter(&budget, 1);
    assert!(budget.admit(&gone, MIB).is_none());
    assert!(budget.admit(&next, MIB).is_none());
    budget.forget(&gone);
    assert_eq!(budget.snapshot().paused, 1);
    drop(held);
    assert_eq!(next_wakes.load(Ordering::SeqCst), 1);
    assert!(budget.admit(&next, MIB).is_some());
}

#[test]
fn the_largest_open_objects_are_sealed_only_under_pressure_and_asked_once() {
    let budget = MemoryBudget::new(8 * MIB); // buffer share 6 MiB
    budget.set_open(1, MIB / 2);
    budget.set_open(2, 2 * MIB);
    budget.set_open(3, MIB);
    budget.set_open(4, 100);
    let _open = budget.charge(Kind::Open, 3 * MIB + MIB / 2 + 100);
    assert!(budget.seal_candidates(4096).is_empty(), "memory is free");

    let _more = budget.charge(Kind::Chunks, 2 * MIB + MIB / 2);
    let (waiter, _) = counting_waiter(&budget, 7);
    assert!(budget.admit(&waiter, MIB).is_none());
    // Half the share (3 MiB) should be moving to the bucket: the two largest.
    assert_eq!(budget.seal_candidates(4096), vec![2, 3]);
    assert!(
        budget.seal_candidates(4096).is_empty(),
        "asked already: not again"
    );
    budget.seal_handled(2);
    budget.set_open(2, 0);
    // Partition 3 is still asked for; what is missing now is covered by partition 1.
    assert_eq!(budget.seal_candidates(4096), vec![1]);
    assert!(
        !budget.seal_candidates(4096).contains(&4),
        "too small to be worth an object"
    );
}

#[test]
fn prefetch_is_sized_from_the_share_and_the_partition_count() {
    let none = BTreeMap::new();
    let sizing = prefetch::size(32 * MIB, 1000, &none);
    let get = |key: &str| {
        sizing
            .properties
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.parse::<usize>().unwrap())
            .unwrap()
    };
    // 33,554 bytes per partition: half for the queue, half for a fetch on top.
    assert_eq!(get(prefetch::QUEUED_MAX_KBYTES), 16);
    assert_eq!(get(prefetch::MAX_PARTITION_FETCH_BYTES), 16_777);
    assert_eq!(get(prefetch::FETCH_MAX_BYTES), 32 * MIB);
    assert_eq!(get(prefetch::QUEUED_MIN_MESSAGES), 131);
    assert_eq!(get(prefetch::FETCH_QUEUE_BACKOFF_MS), 10);
    assert!(sizing.bound <= 32 * MIB, "{}", sizing.bound);
    assert!(sizing.warnings.is_empty());

    let six = prefetch::size(32 * MIB, 6, &none);
    assert!(six.bound <= 32 * MIB);
    // fetch.max.bytes never drops below message.max.bytes (librdkafka refuses that).
    let tiny = prefetch::size(MIB / 2, 6, &none);
    assert!(tiny
        .properties
        .contains(&(prefetch::FETCH_MAX_BYTES, "1000000".to_owned())));
}

#[test]
fn values_the_user_set_are_kept_and_a_bound_over_the_share_is_reported() {
    let mut user = BTreeMap::new();
    user.insert(prefetch::QUEUED_MAX_KBYTES.to_owned(), "65536".to_owned());
    let sizing = prefetch::size(32 * MIB, 100, &user);
    assert!(sizing
        .properties
        .iter()
        .all(|(key, _)| *key != prefetch::QUEUED_MAX_KBYTES));
    assert_eq!(sizing.warnings.len(), 1);
    assert!(
        sizing.warnings[0].contains("\"queued.max.messages.kbytes\" = 65536"),
        "{}",
        sizing.warnings[0]
    );
    // A user value within the share: kept, nothing said.
    user.insert(prefetch::QUEUED_MAX_KBYTES.to_owned(), "16".to_owned());
    let sizing = prefetch::size(32 * MIB, 100, &user);
    assert!(sizing.warnings.is_empty());
    // The alias counts as set.
    let mut alias = BTreeMap::new();
    alias.insert("fetch.message.max.bytes".to_owned(), "1048576".to_owned());
    let sizing = prefetch::size(32 * MIB, 10, &alias);
    assert!(sizing
        .properties
        .iter()
        .all(|(key, _)| *key != prefetch::MAX_PARTITION_FETCH_BYTES));
}

#[test]
fn fetch_slots_are_taken_in_turn_and_passed_on_when_given_up() {
    // 4 MiB of prefetch share: 4 slots of 1 MiB.
    let budget = MemoryBudget::new(16 * MIB);
    let partitions: Vec<_> = (0..6).map(|p| counting_waiter(&budget, p)).collect();
    let granted: Vec<bool> = partitions
        .iter()
        .map(|(waiter, _)| budget.acquire_fetch(waiter))
        .collect();
    assert_eq!(granted, [true, true, true, true, false, false]);
    assert_eq!(budget.fetch_waiting(), 2);
    assert!(
        budget.acquire_fetch(&partitions[0].0),
        "a holder keeps its slot"
    );
    // The sixth may not overtake the fifth.
    assert!(!budget.acquire_fetch(&partitions[5].0));

    // The first gives its slot up and queues again: the fifth is woken and takes it.
    budget.release_fetch(&partitions[0].0, true);
    assert_eq!(partitions[4].1.load(Ordering::SeqCst), 1);
    assert_eq!(partitions[5].1.load(Ordering::SeqCst), 0);
    assert!(budget.acquire_fetch(&partitions[4].0));
    assert!(
        !budget.acquire_fetch(&partitions[0].0),
        "behind the sixth now"
    );

    // A holder that stops (no requeue) passes its slot to the head: the sixth, then the first.
    budget.release_fetch(&partitions[1].0, false);
    assert_eq!(partitions[5].1.load(Ordering::SeqCst), 1);
    assert!(budget.acquire_fetch(&partitions[5].0));
    budget.release_fetch(&partitions[2].0, false);
    assert!(budget.acquire_fetch(&partitions[0].0));
    assert_eq!(budget.fetch_waiting(), 0);
    assert_eq!(budget.snapshot().fetch_slots, 4);
}

#[test]
fn slots_freed_before_the_head_takes_one_wake_the_waiters_behind_it() {
    // 4 slots; 4 holders, 3 waiting.
    let budget = MemoryBudget::new(16 * MIB);
    let partitions: Vec<_> = (0..7).map(|p| counting_waiter(&budget, p)).collect();
    for (waiter, _) in &partitions {
        budget.acquire_fetch(waiter);
    }
    assert_eq!(budget.fetch_waiting(), 3);
    // Two holders give up their slots before the head (the fifth) took one: each release
    // wakes the head only.
    budget.release_fetch(&partitions[0].0, false);
    budget.release_fetch(&partitions[1].0, false);
    assert_eq!(partitions[4].1.load(Ordering::SeqCst), 2);
    assert_eq!(partitions[5].1.load(Ordering::SeqCst), 0);
    // The head takes its slot and, one being still free, wakes the sixth, which takes it.
    assert!(budget.acquire_fetch(&partitions[4].0));
    assert_eq!(partitions[5].1.load(Ordering::SeqCst), 1);
    assert!(budget.acquire_fetch(&partitions[5].0));
    // No slot is left: the seventh is not woken.
    assert_eq!(partitions[6].1.load(Ordering::SeqCst), 0);
    assert!(!budget.acquire_fetch(&partitions[6].0));
    assert_eq!(budget.fetch_waiting(), 1);
}

#[test]
fn fetch_slots_are_at_most_the_partitions_the_queues_were_sized_for() {
    let budget = MemoryBudget::new(128 * MIB); // 16 slots of 2 MiB
    assert_eq!(budget.snapshot().fetch_slots, 16);
    budget.limit_fetch_slots(6);
    assert_eq!(budget.snapshot().fetch_slots, 6);
    // Two partitions at start: each partition's queue may hold half the prefetch share, so
    // with partitions added later only two may fetch at once (four would hold twice the share).
    let budget = MemoryBudget::new(128 * MIB);
    budget.limit_fetch_slots(2);
    assert_eq!(budget.snapshot().fetch_slots, 2);
    let waiters: Vec<_> = (0..8).map(|p| counting_waiter(&budget, p)).collect();
    let fetching = waiters
        .iter()
        .filter(|(waiter, _)| budget.acquire_fetch(waiter))
        .count();
    assert_eq!(fetching, 2);
    assert_eq!(budget.fetch_waiting(), 6);
}

#[test]
fn there_are_never_fewer_than_four_fetch_slots() {
    let budget = MemoryBudget::new(MIB);
    let waiters: Vec<_> = (0..4).map(|p| counting_waiter(&budget, p)).collect();
    assert!(waiters
        .iter()
        .all(|(waiter, _)| budget.acquire_fetch(waiter)));
}
