//! The 10-byte MsgID of SMGP 3.0.3 and CNGP 2.0: BCD digits, gateway (ISMG) code 3 bytes, time
//! MMDDHHMM 4 bytes, sequence 3 bytes, e.g. `01 00 61 01 16 17 00 01 23 45`.
//!
//! Its text form everywhere in Herald (SubmitOutcome carrier ids, reports, simulator records) is
//! the lowercase hex of the ten bytes; for a well-formed BCD id that is just its 20 digits, and
//! for a gateway that fills the bytes differently it is still one stable spelling, so a report
//! always matches its Submit_Resp.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Datelike, TimeZone, Timelike};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MsgId10(pub [u8; 10]);

impl fmt::Display for MsgId10 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for MsgId10 {
    type Err = String;
    /// Parses the 20-hex-digit text form.
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 20 || !s.is_ascii() {
            return Err(format!("MsgID {s:?} is not 20 hex digits"));
        }
        let mut out = [0u8; 10];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("MsgID {s:?} is not 20 hex digits"))?;
        }
        Ok(MsgId10(out))
    }
}

/// Writes `value` (< 10^(2·out.len())) as packed BCD, most significant digit first.
fn put_bcd(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        let lo = (value % 10) as u8;
        value /= 10;
        let hi = (value % 10) as u8;
        value /= 10;
        *byte = (hi << 4) | lo;
    }
}

impl MsgId10 {
    /// Packs a gateway code (6 digits), a time and a sequence (6 digits) as BCD.
    pub fn new<Tz: TimeZone>(gateway: u32, at: &DateTime<Tz>, sequence: u32) -> MsgId10 {
        let mut b = [0u8; 10];
        put_bcd(&mut b[0..3], u64::from(gateway % 1_000_000));
        let mmddhhmm = u64::from(at.month()) * 1_000_000
            + u64::from(at.day()) * 10_000
            + u64::from(at.hour()) * 100
            + u64::from(at.minute());
        put_bcd(&mut b[3..7], mmddhhmm);
        put_bcd(&mut b[7..10], u64::from(sequence % 1_000_000));
        MsgId10(b)
    }
}

/// Mints MsgIDs for one gateway: the current minute plus a counter wrapping at 10^6.
#[derive(Debug)]
pub struct MsgId10Generator {
    gateway: u32,
    counter: AtomicU32,
}

impl MsgId10Generator {
    pub fn new(gateway: u32) -> Self {
        MsgId10Generator {
            gateway: gateway % 1_000_000,
            counter: AtomicU32::new(0),
        }
    }

    pub fn next_at<Tz: TimeZone>(&self, at: &DateTime<Tz>) -> MsgId10 {
        let seq = self.counter.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        MsgId10::new(self.gateway, at, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn packs_the_example_from_the_spec() {
        let tz = FixedOffset::east_opt(8 * 3600).expect("offset");
        let t = tz
            .with_ymd_and_hms(2024, 1, 16, 17, 0, 0)
            .single()
            .expect("time");
        let id = MsgId10::new(10061, &t, 12345);
        assert_eq!(
            id.0,
            [0x01, 0x00, 0x61, 0x01, 0x16, 0x17, 0x00, 0x01, 0x23, 0x45]
        );
        assert_eq!(id.to_string(), "01006101161700012345");
        assert_eq!("01006101161700012345".parse::<MsgId10>(), Ok(id));
        assert!("0100610116170001234".parse::<MsgId10>().is_err());
        assert!("0100610116170001234g".parse::<MsgId10>().is_err());
    }

    #[test]
    fn text_form_is_hex_of_any_bytes() {
        let id = MsgId10([0xFF, 0, 1, 2, 3, 4, 5, 6, 7, 0xAB]);
        assert_eq!(id.to_string(), "ff0001020304050607ab");
        assert_eq!(id.to_string().parse::<MsgId10>(), Ok(id));
    }

    #[test]
    fn generator_counts() {
        let g = MsgId10Generator::new(1);
        let now = chrono::Local::now();
        let a = g.next_at(&now);
        let b = g.next_at(&now);
        assert_ne!(a, b);
        assert_eq!(&a.0[..7], &b.0[..7]);
    }
}
