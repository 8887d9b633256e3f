//! [`Offsets`]: a set of offsets kept as sorted, disjoint, non-adjacent inclusive ranges, so that
//! a partition of millions of offsets stored in a few hundred objects costs a few hundred entries.

use std::fmt;

/// A set of offsets as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Offsets(Vec<(i64, i64)>);

impl Offsets {
    pub fn new() -> Self {
        Offsets(Vec::new())
    }

    /// `first..=last`; empty when `last < first`.
    pub fn range(first: i64, last: i64) -> Self {
        if last < first {
            Offsets::new()
        } else {
            Offsets(vec![(first, last)])
        }
    }

    /// The set of the given offsets, in any order, repeats allowed.
    pub fn from_offsets(offsets: impl IntoIterator<Item = i64>) -> Self {
        Self::from_ranges(offsets.into_iter().map(|offset| (offset, offset)))
    }

    /// The union of inclusive ranges, in any order, overlapping or not.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (i64, i64)>) -> Self {
        let mut ranges: Vec<(i64, i64)> = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                // Adjacent ranges merge too: `last + 1` cannot overflow past a range that starts
                // after it, and saturating keeps `i64::MAX` safe.
                Some(previous) if first <= previous.1.saturating_add(1) => {
                    previous.1 = previous.1.max(last)
                }
                _ => merged.push((first, last)),
            }
        }
        Offsets(merged)
    }

    pub fn ranges(&self) -> &[(i64, i64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many offsets the set holds.
    pub fn count(&self) -> u64 {
        self.0
            .iter()
            .map(|(first, last)| (last - first) as u64 + 1)
            .sum()
    }

    #[cfg(test)]
    pub fn contains(&self, offset: i64) -> bool {
        let index = self.0.partition_point(|(_, last)| *last < offset);
        self.0.get(index).is_some_and(|(first, _)| *first <= offset)
    }

    pub fn first(&self) -> Option<i64> {
        self.0.first().map(|(first, _)| *first)
    }

    pub fn last(&self) -> Option<i64> {
        self.0.last().map(|(_, last)| *last)
    }

    pub fn union(&self, other: &Offsets) -> Offsets {
        Self::from_ranges(self.0.iter().chain(other.0.iter()).copied())
    }

    /// The offsets of `self` that are not in `other`.
    pub fn minus(&self, other: &Offsets) -> Offsets {
        let mut out = Vec::new();
        let mut others = other.0.iter().peekable();
        for &(mut first, last) in &self.0 {
            // Skip the ranges of `other` wholly before this one.
            while others.peek().is_some_and(|(_, o_last)| *o_last < first) {
                others.next();
            }
            let mut rest = others.clone();
            let mut open = true;
            while let Some(&&(o_first, o_last)) = rest.peek() {
                if o_first > last {
                    break;
                }
                if o_first > first {
                    out.push((first, o_first - 1));
                }
                if o_last >= last {
                    open = false;
                    break;
                }
                first = o_last + 1;
                rest.next();
            }
            if open {
                out.push((first, last));
            }
        }
        Offsets(out)
    }

    /// The offsets in both sets.
    pub fn intersect(&self, other: &Offsets) -> Offsets {
        self.minus(&self.minus(other))
    }
}

impl fmt::Debug for Offsets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// `0-9, 12, 20-29`; `none` when empty.
impl fmt::Display for Offsets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (index, (first, last)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            if first == last {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}-{last}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_they_overlap_or_touch() {
        let set = Offsets::from_ranges([(10, 19), (0, 4), (5, 7), (15, 30), (40, 40), (9, 8)]);
        assert_eq!(set.ranges(), &[(0, 7), (10, 30), (40, 40)]);
        assert_eq!(set.count(), 8 + 21 + 1);
        assert_eq!(set.to_string(), "0-7, 10-30, 40");
        assert!(set.contains(0) && set.contains(30) && set.contains(40));
        assert!(!set.contains(8) && !set.contains(31) && !set.contains(-1));
        assert_eq!(
            Offsets::from_offsets([3, 1, 2, 2, 7]).ranges(),
            &[(1, 3), (7, 7)]
        );
        assert_eq!(
            Offsets::from_ranges([(i64::MAX - 1, i64::MAX), (0, 0)]).count(),
            3
        );
    }

    #[test]
    fn minus_and_intersect() {
        let all = Offsets::range(0, 99);
        let holes = Offsets::from_ranges([(-5, 0), (10, 19), (50, 50), (99, 120)]);
        assert_eq!(all.minus(&holes).ranges(), &[(1, 9), (20, 49), (51, 98)]);
        assert_eq!(all.intersect(&holes).to_string(), "0, 10-19, 50, 99");
        assert!(all.minus(&all).is_empty());
        assert_eq!(all.minus(&Offsets::new()), all);
        let pieces = Offsets::from_ranges([(0, 9), (20, 29), (40, 49)]);
        let cut = Offsets::from_ranges([(5, 24), (45, 100)]);
        assert_eq!(pieces.minus(&cut).to_string(), "0-4, 25-29, 40-44");
        assert_eq!(pieces.intersect(&cut).to_string(), "5-9, 20-24, 45-49");
        assert_eq!(Offsets::new().to_string(), "none");
    }
}
