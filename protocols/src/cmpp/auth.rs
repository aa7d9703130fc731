//! CMPP login authentication: the SP's AuthenticatorSource and the gateway's AuthenticatorISMG.
//!
//! AuthenticatorSource = MD5(Source_Addr + 9 × 0x00 + shared secret + timestamp), where the
//! timestamp is MMDDHHMMSS as ten ASCII digits; the same timestamp travels in CONNECT as a u32.
//! AuthenticatorISMG = MD5(Status + AuthenticatorSource + shared secret), Status as the 4-byte
//! big-endian CMPP 3.0 field [CMPP3 §8.4.1].

use chrono::{DateTime, Datelike, TimeZone, Timelike};
use md5::{Digest, Md5};

/// The CONNECT timestamp for `now`: MMDDHHMMSS as a number (it fits a u32).
pub fn timestamp<Tz: TimeZone>(now: &DateTime<Tz>) -> u32 {
    now.month() * 100_000_000
        + now.day() * 1_000_000
        + now.hour() * 10_000
        + now.minute() * 100
        + now.second()
}

pub fn authenticator_source(source_addr: &str, secret: &str, timestamp: u32) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(source_addr.as_bytes());
    h.update([0u8; 9]);
    h.update(secret.as_bytes());
    h.update(format!("{timestamp:010}").as_bytes());
    h.finalize().into()
}

pub fn authenticator_ismg(status: u32, authenticator_source: &[u8; 16], secret: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(status.to_be_bytes());
    h.update(authenticator_source);
    h.update(secret.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, TimeZone};

    #[test]
    fn timestamp_is_mmddhhmmss() {
        let tz = FixedOffset::east_opt(8 * 3600).expect("valid offset");
        let t = tz
            .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
            .single()
            .expect("valid time");
        assert_eq!(timestamp(&t), 102_030_405);
        assert_eq!(format!("{:010}", timestamp(&t)), "0102030405");
    }

    #[test]
    fn authenticator_matches_hand_built_md5_input() {
        // The input laid out byte by byte, as the spec describes it.
        let mut input = b"901234".to_vec();
        input.extend_from_slice(&[0; 9]);
        input.extend_from_slice(b"secret");
        input.extend_from_slice(b"1125070100");
        let expected: [u8; 16] = Md5::digest(&input).into();
        assert_eq!(
            authenticator_source("901234", "secret", 1_125_070_100),
            expected
        );
        assert_ne!(
            authenticator_source("901234", "other", 1_125_070_100),
            expected
        );
    }

    #[test]
    fn ismg_authenticator_covers_status() {
        let src = [7u8; 16];
        assert_ne!(
            authenticator_ismg(0, &src, "s"),
            authenticator_ismg(3, &src, "s")
        );
    }
}
