//! The CMPP 64-bit Msg_Id: month 4 bits, day 5, hour 5, minute 6, second 6, gateway code 22,
//! sequence 16, most significant first. Used by the simulator to mint ids and by anyone who wants
//! to read the time and gateway out of an id.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Datelike, Local, TimeZone, Timelike};

/// A Msg_Id split into its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgId {
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 22 bits.
    pub gateway: u32,
    pub sequence: u16,
}

impl MsgId {
    /// Packs the fields; each is masked to its width so out-of-range input cannot bleed into
    /// neighbouring fields.
    pub fn pack(&self) -> u64 {
        ((u64::from(self.month) & 0xF) << 60)
            | ((u64::from(self.day) & 0x1F) << 55)
            | ((u64::from(self.hour) & 0x1F) << 50)
            | ((u64::from(self.minute) & 0x3F) << 44)
            | ((u64::from(self.second) & 0x3F) << 38)
            | ((u64::from(self.gateway) & 0x3F_FFFF) << 16)
            | u64::from(self.sequence)
    }

    pub fn unpack(id: u64) -> MsgId {
        MsgId {
            month: ((id >> 60) & 0xF) as u8,
            day: ((id >> 55) & 0x1F) as u8,
            hour: ((id >> 50) & 0x1F) as u8,
            minute: ((id >> 44) & 0x3F) as u8,
            second: ((id >> 38) & 0x3F) as u8,
            gateway: ((id >> 16) & 0x3F_FFFF) as u32,
            sequence: (id & 0xFFFF) as u16,
        }
    }
}

/// Mints Msg_Ids for one gateway: the current time plus a wrapping 16-bit counter.
#[derive(Debug)]
pub struct MsgIdGenerator {
    gateway: u32,
    counter: AtomicU32,
}

impl MsgIdGenerator {
    pub fn new(gateway: u32) -> Self {
        MsgIdGenerator {
            gateway: gateway & 0x3F_FFFF,
            counter: AtomicU32::new(0),
        }
    }

    pub fn next(&self) -> u64 {
        self.reserve_at(&Local::now(), 1)
    }

    /// Reserves `n` consecutive ids (a SUBMIT to n numbers gets Msg_Id … Msg_Id+n−1) and returns
    /// the first. The block never straddles the 16-bit sequence wrap.
    pub fn reserve_at<Tz: TimeZone>(&self, now: &DateTime<Tz>, n: u16) -> u64 {
        let n = u32::from(n.max(1));
        let seq = loop {
            let cur = self.counter.load(Ordering::Relaxed);
            let start = if cur + n > 0x1_0000 { 0 } else { cur };
            if self
                .counter
                .compare_exchange(cur, start + n, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                break start;
            }
        };
        MsgId {
            month: now.month() as u8,
            day: now.day() as u8,
            hour: now.hour() as u8,
            minute: now.minute() as u8,
            second: now.second() as u8,
            gateway: self.gateway,
            sequence: seq as u16,
        }
        .pack()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use proptest::prelude::*;

    #[test]
    fn packs_fields_at_spec_positions() {
        let id = MsgId {
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 58,
            gateway: 0x12345,
            sequence: 0xBEEF,
        };
        let expected = (12u64 << 60)
            | (31 << 55)
            | (23 << 50)
            | (59 << 44)
            | (58 << 38)
            | (0x12345 << 16)
            | 0xBEEF;
        assert_eq!(id.pack(), expected);
        assert_eq!(MsgId::unpack(expected), id);
    }

    #[test]
    fn generator_embeds_time_and_counts() {
        let tz = FixedOffset::east_opt(0).expect("offset");
        let t = tz
            .with_ymd_and_hms(2025, 11, 25, 7, 1, 2)
            .single()
            .expect("time");
        let g = MsgIdGenerator::new(4242);
        let a = MsgId::unpack(g.reserve_at(&t, 1));
        let b = MsgId::unpack(g.reserve_at(&t, 3));
        let c = MsgId::unpack(g.reserve_at(&t, 1));
        assert_eq!(
            (a.month, a.day, a.hour, a.minute, a.second),
            (11, 25, 7, 1, 2)
        );
        assert_eq!(a.gateway, 4242);
        assert_eq!((a.sequence, b.sequence, c.sequence), (0, 1, 4));
    }

    proptest! {
        #[test]
        fn pack_unpack_round_trip(id in any::<u64>()) {
            prop_assert_eq!(MsgId::unpack(id).pack(), id);
        }
    }
}
