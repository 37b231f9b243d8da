//! Units shared from the command line down to the kernel.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A data rate in bits per second: the one rate type from the command line
/// and the API down to the HTB class. The QSPEC's f32 bytes/s (RFC 5975
/// TMOD-1) is only its wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rate(u64);

/// Why a rate string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RateError {
    #[error("bad rate {0:?}: expected a number with an optional unit like 10mbit")]
    Number(String),
    #[error(
        "bad rate unit {unit:?} in {input:?}: use bit, kbit, mbit, gbit (bits per second) or bps, kbps, mbps, gbps (bytes per second, as tc)"
    )]
    Unit { unit: String, input: String },
    #[error("rate {0:?} out of range: at least 1 bit/s, at most 2^64-1")]
    Range(String),
}

impl Rate {
    pub const fn from_bps(bits_per_second: u64) -> Self {
        Self(bits_per_second)
    }

    /// Bits per second.
    pub const fn bps(self) -> u64 {
        self.0
    }

    /// Bytes per second as the QSPEC's TMOD-1 rate carries it (f32).
    pub fn bytes_per_sec_f32(self) -> f32 {
        self.0 as f32 / 8.0
    }

    /// The rate a QSPEC's TMOD-1 field (bytes/s) stands for, rounded to
    /// whole bits per second; `None` for a negative, NaN or infinite field.
    pub fn from_bytes_per_sec_f32(r: f32) -> Option<Self> {
        let bps = f64::from(r) * 8.0;
        (bps.is_finite() && bps >= 0.0 && bps <= u64::MAX as f64).then(|| Self(bps.round() as u64))
    }

    /// Parses a rate such as `10mbit`, `500kbit`, `1gbit`, `64000` (bit/s),
    /// `1.5mbit` or `125kbps`, with tc's units: `bit` is bits per second,
    /// `bps` is bytes per second (tc-bps(8)).
    pub fn parse(s: &str) -> Result<Self, RateError> {
        let t = s.trim().to_ascii_lowercase();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let v: f64 = num.parse().map_err(|_| RateError::Number(s.to_string()))?;
        let mult = match unit {
            "" | "bit" => 1.0,
            "kbit" | "k" => 1e3,
            "mbit" | "m" => 1e6,
            "gbit" | "g" => 1e9,
            "bps" => 8.0,
            "kbps" => 8e3,
            "mbps" => 8e6,
            "gbps" => 8e9,
            _ => {
                return Err(RateError::Unit {
                    unit: unit.to_string(),
                    input: s.to_string(),
                });
            }
        };
        let bps = v * mult;
        if !bps.is_finite() || bps < 1.0 || bps > u64::MAX as f64 {
            return Err(RateError::Range(s.to_string()));
        }
        Ok(Self(bps.round() as u64))
    }
}

impl std::str::FromStr for Rate {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, RateError> {
        Self::parse(s)
    }
}

impl std::fmt::Display for Rate {
    /// tc's spelling, exact: `10mbit`, `1500kbit`, `64000bit`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        match b {
            _ if b >= 1_000_000_000 && b.is_multiple_of(1_000_000_000) => {
                write!(f, "{}gbit", b / 1_000_000_000)
            }
            _ if b >= 1_000_000 && b.is_multiple_of(1_000_000) => {
                write!(f, "{}mbit", b / 1_000_000)
            }
            _ if b >= 1_000 && b.is_multiple_of(1_000) => write!(f, "{}kbit", b / 1_000),
            _ => write!(f, "{b}bit"),
        }
    }
}

/// What [`Rate::parse`] reads, as a JSON Schema pattern (ECMA 262, no
/// flags): a number, then nothing, `k`/`m`/`g`, or a unit ending in `bit` or
/// `bps`, any case. It does not refuse 0 or an overflow; `vlsp validate` does.
pub const RATE_PATTERN: &str =
    r"^\s*([0-9]+\.?[0-9]*|\.[0-9]+)([kKmMgG]?([bB][iI][tT]|[bB][pP][sS])|[kKmMgG])?\s*$";

/// [`Rate::parse`] as bits per second with the message as a string, for the
/// file parsers that wrap it with a position.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    Rate::parse(s).map(Rate::bps).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_like_tc() {
        assert_eq!(parse_rate("10mbit").unwrap(), 10_000_000);
        assert_eq!(parse_rate("1.5mbit").unwrap(), 1_500_000);
        assert_eq!(parse_rate("64000").unwrap(), 64_000);
        assert_eq!(parse_rate("1Gbit").unwrap(), 1_000_000_000);
        assert!(parse_rate("10 furlongs").unwrap_err().contains("unit"));
        assert!(parse_rate("mbit").is_err());
        assert!(parse_rate("0").is_err());
    }

    #[test]
    fn bps_means_bytes_per_second_as_in_tc() {
        // tc-bps(8): "bps" is bytes per second; "bit" is bits per second.
        assert_eq!(Rate::parse("1000bps").unwrap().bps(), 8_000);
        assert_eq!(Rate::parse("125kbps").unwrap().bps(), 1_000_000);
        assert_eq!(Rate::parse("1000bit").unwrap().bps(), 1_000);
        assert!(matches!(
            Rate::parse("3 furlongs"),
            Err(RateError::Unit { .. })
        ));
    }

    #[test]
    fn rate_displays_in_tc_units_and_round_trips() {
        for (s, b) in [
            ("10mbit", 10_000_000),
            ("1500kbit", 1_500_000),
            ("64001bit", 64_001),
            ("1gbit", 1_000_000_000),
        ] {
            let r = Rate::from_bps(b);
            assert_eq!(r.to_string(), s);
            assert_eq!(s.parse::<Rate>().unwrap(), r);
        }
        let r = Rate::from_bps(5_000_000);
        assert_eq!(r.bytes_per_sec_f32(), 625_000.0);
        assert_eq!(Rate::from_bytes_per_sec_f32(625_000.0), Some(r));
        assert_eq!(Rate::from_bytes_per_sec_f32(f32::NAN), None);
    }
}
