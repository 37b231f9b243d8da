//! Units shared from the command line down to the kernel.

/// Parses a rate such as `10mbit`, `500kbit`, `1gbit`, `64000` (bit/s) or
/// `1.5mbit`; the units are tc's.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| {
        format!("bad rate {s:?}: expected a number with an optional unit like 10mbit")
    })?;
    let mult = match unit {
        "" | "bit" | "bps" => 1.0,
        "kbit" | "k" => 1e3,
        "mbit" | "m" => 1e6,
        "gbit" | "g" => 1e9,
        _ => {
            return Err(format!(
                "bad rate unit {unit:?} in {s:?}: use bit, kbit, mbit or gbit (bits per second)"
            ));
        }
    };
    let bps = v * mult;
    if !bps.is_finite() || bps < 1.0 || bps > u64::MAX as f64 {
        return Err(format!("rate {s:?} out of range"));
    }
    Ok(bps.round() as u64)
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
}
