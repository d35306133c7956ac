//! Generated BMC passwords (BMCUser without `bmcSecretRef`).

use rand::Rng;
use rand::seq::SliceRandom;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
/// Special characters every vendor we know accepts (iDRAC, iLO, XCC, Supermicro).
const SPECIAL: &[u8] = b"-_.!";

/// The password length for a BMC advertising these limits: 16 by default, never outside the
/// BMC's `MinPasswordLength..=MaxPasswordLength`, at least 8.
pub fn length(min: Option<u32>, max: Option<u32>) -> usize {
    let mut len = 16usize;
    if let Some(max) = max {
        len = len.min(max as usize);
    }
    if let Some(min) = min {
        len = len.max(min as usize);
    }
    len.max(8)
}

/// A random password of `len` characters with at least one lower, upper, digit and special
/// character.
pub fn generate(len: usize) -> String {
    let len = len.max(8);
    let mut rng = rand::rng();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGITS, SPECIAL]
        .iter()
        .map(|set| set[rng.random_range(0..set.len())])
        .collect();
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SPECIAL].concat();
    while chars.len() < len {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    String::from_utf8(chars).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(length(None, None), 16);
        assert_eq!(length(Some(8), Some(12)), 12);
        assert_eq!(length(Some(20), Some(40)), 20);
        assert_eq!(length(None, Some(4)), 8);
    }

    #[test]
    fn generated_passwords_have_every_class() {
        for _ in 0..50 {
            let p = generate(12);
            assert_eq!(p.len(), 12);
            assert!(p.bytes().any(|b| LOWER.contains(&b)));
            assert!(p.bytes().any(|b| UPPER.contains(&b)));
            assert!(p.bytes().any(|b| DIGITS.contains(&b)));
            assert!(p.bytes().any(|b| SPECIAL.contains(&b)));
        }
        assert_ne!(generate(16), generate(16));
    }
}
