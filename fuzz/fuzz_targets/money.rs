//! The money arithmetic, `Op::apply_to`, on every balance and amount: no panic, no overflow, and
//! the answer is what exact (`i128`) arithmetic says.
//!
//! - A deposit is written as `balance + amount` when that fits an `i64`, and refused as an
//!   overflow otherwise.
//! - A withdrawal is written as `balance - amount` when the balance covers it, and refused for
//!   insufficient funds otherwise.
//! - Only positive amounts exist (`Amount::new`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use racebank::{Amount, Op, Refusal};

fuzz_target!(|data: [u8; 17]| {
    let balance = i64::from_le_bytes(data[0..8].try_into().unwrap());
    let value = i64::from_le_bytes(data[8..16].try_into().unwrap());
    let Some(amount) = Amount::new(value) else {
        assert!(value <= 0, "Amount::new refused {value}");
        return;
    };
    assert!(value > 0 && amount.get() == value);
    let (op, exact) = if data[16] & 1 == 0 {
        (Op::Deposit(amount), i128::from(balance) + i128::from(value))
    } else {
        (
            Op::Withdraw(amount),
            i128::from(balance) - i128::from(value),
        )
    };
    match (op, op.apply_to(balance)) {
        (Op::Deposit(_), Ok(written)) => assert_eq!(i128::from(written), exact),
        (Op::Deposit(_), Err(Refusal::WouldOverflow { .. })) => {
            assert!(exact > i128::from(i64::MAX))
        }
        (Op::Withdraw(_), Ok(written)) => {
            assert!(balance >= value);
            assert_eq!(i128::from(written), exact);
        }
        (Op::Withdraw(_), Err(Refusal::InsufficientFunds { .. })) => assert!(balance < value),
        (op, outcome) => panic!("{op:?} on {balance}: {outcome:?}"),
    }
});
