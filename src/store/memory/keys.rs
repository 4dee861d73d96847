//! The memory store's idempotency keys: each key's answer until it expires, at most
//! [`MEMORY_CAPACITY`] of them.
//!
//! Every key lives for the same time, so the order keys were stored in is the order they expire
//! in: a queue beside the map finds the expired and, when the table is full, the oldest, without a
//! scan. Expired keys are dropped lazily, when a new one is stored; a lookup ignores them.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::domain::idempotency::{Claim, IdempotencyKey, Remembered, MEMORY_CAPACITY};

/// The keys and their answers.
#[derive(Debug, Default)]
pub(super) struct Keys {
    answers: HashMap<IdempotencyKey, (Remembered, Instant)>,
    /// Keys in the order they were stored, with their expiry; may hold keys already dropped.
    order: VecDeque<(IdempotencyKey, Instant)>,
}

impl Keys {
    /// The answer kept for `key`, unless it expired.
    pub(super) fn get(&self, key: &IdempotencyKey) -> Option<Remembered> {
        let (answer, expires) = self.answers.get(key)?;
        (*expires > Instant::now()).then_some(*answer)
    }

    /// Keeps `answer` for the claim's key (which the caller saw free).
    pub(super) fn insert(&mut self, claim: &Claim<'_>, answer: Remembered) {
        let now = Instant::now();
        while let Some((key, expires)) = self.order.front() {
            if *expires > now && self.answers.len() < MEMORY_CAPACITY {
                break;
            }
            // Drop the map's entry only if it is this one (an expired key may have been stored again).
            if self
                .answers
                .get(key)
                .is_some_and(|(_, kept)| kept == expires)
            {
                self.answers.remove(key);
            }
            self.order.pop_front();
        }
        let expires = now + claim.ttl;
        self.answers.insert(claim.key.clone(), (answer, expires));
        self.order.push_back((claim.key.clone(), expires));
    }

    /// Forgets every key.
    pub(super) fn clear(&mut self) {
        self.answers.clear();
        self.order.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.answers.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::money::{Amount, Op};

    fn claim(key: &IdempotencyKey, ttl: Duration) -> Claim<'_> {
        Claim {
            key,
            op: Op::Deposit(Amount::new(1).unwrap()),
            ttl,
        }
    }

    #[test]
    fn an_expired_key_is_free_again() {
        let mut keys = Keys::default();
        let key = IdempotencyKey::parse(b"k").unwrap();
        let short = claim(&key, Duration::from_nanos(1));
        keys.insert(&short, short.answer(Ok(1)));
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(keys.get(&key), None);
        let long = claim(&key, Duration::from_secs(60));
        keys.insert(&long, long.answer(Ok(2)));
        assert_eq!(keys.get(&key).map(|kept| kept.outcome), Some(Ok(2)));
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn a_full_table_drops_its_oldest_key_first() {
        let mut keys = Keys::default();
        let names: Vec<IdempotencyKey> = (0..=MEMORY_CAPACITY)
            .map(|i| IdempotencyKey::parse(format!("k{i}").as_bytes()).unwrap())
            .collect();
        for name in &names {
            let kept = claim(name, Duration::from_secs(60));
            keys.insert(&kept, kept.answer(Ok(1)));
        }
        assert_eq!(keys.len(), MEMORY_CAPACITY);
        assert_eq!(keys.get(&names[0]), None);
        assert!(keys.get(&names[1]).is_some());
        assert!(keys.get(&names[MEMORY_CAPACITY]).is_some());
    }
}
