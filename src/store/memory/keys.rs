//! The memory store's idempotency keys: each key's answer until it expires, at most
//! [`MEMORY_CAPACITY`] of them.
//!
//! Every key lives for the same time, so the order keys were stored in is the order they expire
//! in: a queue beside the map finds the expired without a scan. Expired keys are dropped lazily,
//! when a new one is stored; a lookup ignores them.
//!
//! A full table of live keys refuses a new key ([`AccountError::KeysFull`], 503) rather than drop
//! the oldest: a key dropped before its time is a promise broken, since its client's retry would be
//! applied a second time. Any client could push out any other's key by sending many of its own.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::domain::error::AccountError;
use crate::domain::idempotency::{Claim, IdempotencyKey, Remembered, MEMORY_CAPACITY};

/// The keys and their answers.
#[derive(Debug)]
pub(super) struct Keys {
    answers: HashMap<IdempotencyKey, (Remembered, Instant)>,
    /// Keys in the order they were stored, with their expiry; may hold keys already dropped.
    order: VecDeque<(IdempotencyKey, Instant)>,
    /// How many live keys the table keeps at most.
    capacity: usize,
}

impl Default for Keys {
    fn default() -> Self {
        Self::with_capacity(MEMORY_CAPACITY)
    }
}

impl Keys {
    /// An empty table keeping at most `capacity` live keys.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            answers: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// The answer kept for `key`, unless it expired.
    pub(super) fn get(&self, key: &IdempotencyKey) -> Option<Remembered> {
        let (answer, expires) = self.answers.get(key)?;
        (*expires > Instant::now()).then_some(*answer)
    }

    /// Drops the expired keys and says whether a new one fits; if not, the caller writes nothing
    /// and answers [`AccountError::KeysFull`].
    pub(super) fn make_room(&mut self) -> Result<(), AccountError> {
        let now = Instant::now();
        while let Some((key, expires)) = self.order.front() {
            if *expires > now {
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
        if self.answers.len() < self.capacity {
            Ok(())
        } else {
            Err(AccountError::KeysFull {
                capacity: self.capacity,
            })
        }
    }

    /// Keeps `answer` for the claim's key (which the caller saw free, after [`Keys::make_room`]).
    pub(super) fn insert(&mut self, claim: &Claim<'_>, answer: Remembered) {
        let now = Instant::now();
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

    /// Stores `key` as a keyed write does: room first, then the answer.
    fn store(keys: &mut Keys, key: &IdempotencyKey, ttl: Duration) -> Result<(), AccountError> {
        keys.make_room()?;
        let kept = claim(key, ttl);
        keys.insert(&kept, kept.answer(Ok(1)));
        Ok(())
    }

    #[test]
    fn a_full_table_of_live_keys_refuses_a_new_key_and_forgets_none() {
        let mut keys = Keys::default();
        let names: Vec<IdempotencyKey> = (0..=MEMORY_CAPACITY)
            .map(|i| IdempotencyKey::parse(format!("k{i}").as_bytes()).unwrap())
            .collect();
        for name in &names[..MEMORY_CAPACITY] {
            store(&mut keys, name, Duration::from_secs(60)).unwrap();
        }

        let refused = store(&mut keys, &names[MEMORY_CAPACITY], Duration::from_secs(60));

        assert_eq!(
            refused,
            Err(AccountError::KeysFull {
                capacity: MEMORY_CAPACITY
            })
        );
        assert_eq!(keys.len(), MEMORY_CAPACITY);
        assert!(keys.get(&names[0]).is_some(), "the oldest live key is kept");
        assert_eq!(keys.get(&names[MEMORY_CAPACITY]), None);
    }

    #[test]
    fn a_full_table_drops_its_expired_keys_to_make_room() {
        let mut keys = Keys::with_capacity(2);
        let [a, b, c] = ["a", "b", "c"].map(|name| IdempotencyKey::parse(name.as_bytes()).unwrap());
        store(&mut keys, &a, Duration::from_nanos(1)).unwrap();
        store(&mut keys, &b, Duration::from_secs(60)).unwrap();
        std::thread::sleep(Duration::from_millis(1));

        store(&mut keys, &c, Duration::from_secs(60)).unwrap();

        assert_eq!(keys.len(), 2);
        assert_eq!(keys.get(&a), None);
        assert!(keys.get(&b).is_some() && keys.get(&c).is_some());
    }
}
