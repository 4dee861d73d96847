//! Duplicate balances, counted with a bitset: evidence of lost updates that needs no trust in the
//! server.
//!
//! With deposits only and one fixed amount `a`, a correct server answers each acknowledged deposit
//! with a different balance: `before + a`, `before + 2a`, ... (the k-th write sees `before + k*a`).
//! Two answers with the same balance mean two deposits wrote the same value, so one overwrote the
//! other. Withdrawals only works the same way downwards. Bit `k - 1` records that step `k` was
//! answered: memory is one bit per request, not a set of every balance seen.

/// The balances a correct server can answer: `base + k * step` for `k` from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ladder {
    /// The balance before the run.
    pub base: i64,
    /// `+amount` for deposits only, `-amount` for withdrawals only.
    pub step: i64,
}

impl Ladder {
    /// The step `k - 1` that `balance` sits on, if it is one of the first `limit` steps.
    #[inline]
    pub fn index(&self, balance: i64, limit: u64) -> Option<u64> {
        let distance = i128::from(balance) - i128::from(self.base);
        let step = i128::from(self.step);
        if step == 0 || distance % step != 0 {
            return None;
        }
        let k = distance / step;
        if (1..=i128::from(limit)).contains(&k) {
            u64::try_from(k - 1).ok()
        } else {
            None
        }
    }
}

/// The steps answered so far, the answers that repeated one, and the answers off the ladder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    words: Vec<u64>,
    /// Answers whose step had already been answered.
    pub duplicates: u64,
    /// Answers that are not on the ladder at all (another client, or a server that is wrong in
    /// another way).
    pub unexpected: u64,
}

impl Seen {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an answer on step `index`; counts a duplicate if it was answered before.
    #[inline]
    pub fn mark(&mut self, index: u64) {
        let word = (index / 64) as usize;
        let bit = 1u64 << (index % 64);
        if word >= self.words.len() {
            // Grows to the highest step seen, which is bounded by the requests sent.
            self.words.resize(word + 1, 0);
        }
        if self.words[word] & bit != 0 {
            self.duplicates += 1;
        } else {
            self.words[word] |= bit;
        }
    }

    /// Records an answer off the ladder.
    #[inline]
    pub fn mark_unexpected(&mut self) {
        self.unexpected += 1;
    }

    /// Adds another worker's answers; a step answered by both is one more duplicate.
    pub fn merge(&mut self, other: &Seen) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            self.duplicates += u64::from((*mine & theirs).count_ones());
            *mine |= theirs;
        }
        self.duplicates += other.duplicates;
        self.unexpected += other.unexpected;
    }

    /// Distinct steps answered.
    pub fn distinct(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_map_to_their_step_on_the_ladder() {
        let up = Ladder { base: 100, step: 5 };
        assert_eq!(up.index(105, 10), Some(0));
        assert_eq!(up.index(150, 10), Some(9));
        assert_eq!(up.index(155, 10), None, "beyond the requests sent");
        assert_eq!(
            up.index(100, 10),
            None,
            "step 0 is the balance before, never an answer"
        );
        assert_eq!(up.index(107, 10), None, "off the ladder");
        let down = Ladder {
            base: 100,
            step: -10,
        };
        assert_eq!(down.index(90, 10), Some(0));
        assert_eq!(down.index(0, 10), Some(9));
        assert_eq!(down.index(110, 10), None);
    }

    #[test]
    fn a_repeated_step_is_a_duplicate_within_and_across_workers() {
        let mut a = Seen::new();
        a.mark(0);
        a.mark(1);
        a.mark(1);
        a.mark(200);
        let mut b = Seen::new();
        b.mark(1);
        b.mark(2);
        b.mark_unexpected();
        a.merge(&b);
        assert_eq!(a.duplicates, 2, "step 1 answered three times");
        assert_eq!(a.distinct(), 4);
        assert_eq!(a.unexpected, 1);
    }

    #[test]
    fn memory_is_one_bit_per_step() {
        let mut seen = Seen::new();
        seen.mark(1_000_000 - 1);
        assert_eq!(seen.words.len(), 1_000_000 / 64);
    }
}
