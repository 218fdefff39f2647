//! Fault and load machinery every simulator needs: a seeded random source (so injected failures
//! are reproducible), the "answer the next N calls of an operation with an error" counters, and
//! a token bucket for gateway-style rate limits. Timers run on tokio's clock, so they follow
//! `tokio::time::pause` in tests.

use std::collections::BTreeMap;

use tokio::time::Instant;

/// SplitMix64: tiny, seeded and deterministic; not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p` (0 never, 1 always, without drawing for either).
    pub fn roll(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A random version-4 style UUID (the shape clouds use for resource ids).
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// `n` random bytes as lowercase hex (job ids, tokens).
    pub fn hex(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes * 2);
        while out.len() < bytes * 2 {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(bytes * 2);
        out
    }
}

/// Consumes one of the "fail the next N" charges of `operation`; true when the call must fail.
pub fn take_fail_next(fail_next: &mut BTreeMap<String, u32>, operation: &str) -> bool {
    match fail_next.get_mut(operation) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

/// A token bucket refilled continuously at `rate` tokens per second, holding at most one
/// second's worth: the shape API gateways throttle with. The rate is passed on every call so a
/// knob changed at run time applies at once.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Option<Instant>,
    rate: u32,
}

impl Default for TokenBucket {
    fn default() -> Self {
        TokenBucket {
            tokens: 0.0,
            last: None,
            rate: 0,
        }
    }
}

impl TokenBucket {
    /// Takes a token if one is left; `false` means the call is over the limit.
    pub fn try_take(&mut self, rate: u32, now: Instant) -> bool {
        let cap = f64::from(rate.max(1));
        if self.rate != rate || self.last.is_none() {
            // A new limit starts with a full bucket.
            self.rate = rate;
            self.tokens = cap;
        } else if let Some(last) = self.last {
            self.tokens = (self.tokens + now.duration_since(last).as_secs_f64() * f64::from(rate)).min(cap);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_a_burst_of_one_second_then_refills() {
        let mut b = TokenBucket::default();
        let t0 = Instant::now();
        assert!((0..5).all(|_| b.try_take(5, t0)));
        assert!(!b.try_take(5, t0));
        assert!(b.try_take(5, t0 + Duration::from_millis(200)));
        assert!(!b.try_take(5, t0 + Duration::from_millis(200)));
    }

    #[test]
    fn fail_next_counts_down() {
        let mut m = BTreeMap::from([("op".to_string(), 2)]);
        assert!(take_fail_next(&mut m, "op"));
        assert!(take_fail_next(&mut m, "op"));
        assert!(!take_fail_next(&mut m, "op"));
        assert!(!take_fail_next(&mut m, "other"));
    }

    #[test]
    fn roll_extremes_and_determinism() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert!(!a.roll(0.0) && a.roll(1.0));
        assert_eq!(a.uuid(), b.uuid());
        assert_eq!(Rng::new(1).hex(4).len(), 8);
    }
}
