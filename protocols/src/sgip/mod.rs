//! SGIP 1.2 (China Unicom's Short message Gateway Interface Protocol) on the wire: header with
//! its 12-byte sequence number, PDUs, stream framing, result codes and the phone-number form SGIP
//! expects. Sessions live in [`crate::session`] and [`crate::sgip_client`]; this module only turns
//! bytes into values and back.
//!
//! SGIP differs from CMPP in ways the rest of the crate must know: there is no heartbeat PDU
//! (idle links are closed and reopened on demand), a link carries traffic one way (the SP connects
//! to submit; the gateway connects back to the SP to deliver MO messages and reports), the
//! password travels in plain text, and the only message id is the SP's own Submit sequence number.

pub mod codec;
pub mod header;
pub mod pdu;

#[cfg(test)]
mod tests;

pub use codec::SgipCodec;
pub use header::{command, mmddhhmmss, Header, SequenceNumber, SgipError, HEADER_LEN, MAX_PDU_LEN};
pub use pdu::{
    login_type, report_flag, report_state, Bind, Body, Deliver, Pdu, Report, Resp, Submit,
    MAX_USERS, NUMBER_LEN,
};

/// The country prefix SGIP requires in front of mobile numbers [SGIP §4.2.3.3: UserNumber].
pub const COUNTRY_PREFIX: &str = "86";

/// Whether a non-zero Result (of Submit_Resp, or any response) is worth retrying, and what it
/// means [SGIP §5, error codes].
///
/// 11 (node busy) and 33 (SMSC queue full) are the gateway asking us to slow down; 88 is used for
/// flow control by some gateways (unconfirmed in the spec). 9 (illegal sequence number, e.g. a
/// duplicate) cannot recur because a retry carries a new sequence number; 21 and 32 describe a
/// temporary outage. Everything else describes the message or the account, so resending the same
/// bytes would fail the same way.
pub fn result_meaning(code: u8) -> (bool, &'static str) {
    match code {
        0 => (false, "success"),
        1 => (false, "illegal login (name or password wrong)"),
        2 => (false, "repeated login on one connection"),
        3 => (true, "too many connections"),
        4 => (false, "login type error"),
        5 => (false, "parameter format error"),
        6 => (false, "illegal mobile number"),
        7 => (false, "message id error"),
        8 => (false, "message length error"),
        9 => (true, "illegal sequence number"),
        10 => (false, "illegal GNS operation"),
        11 => (true, "node busy"),
        21 => (true, "destination unreachable"),
        22 => (false, "routing error"),
        23 => (false, "route does not exist"),
        24 => (false, "charge number invalid"),
        25 => (false, "user cannot communicate"),
        26 => (false, "handset memory full"),
        27 => (false, "handset does not support the message"),
        28 => (false, "handset error receiving the message"),
        29 => (false, "unknown user"),
        30 => (false, "function not provided"),
        31 => (false, "illegal device"),
        32 => (true, "system failure"),
        33 => (true, "SMSC queue full"),
        88 => (true, "flow control"),
        _ => (false, "other error"),
    }
}

/// The Stat text Herald reports for an SGIP Report's State and ErrorCode, in the CMPP vocabulary
/// the rest of Herald reads: `DELIVRD`, `UNDELIV` (with `:code` when the gateway gave one),
/// `ACCEPTD` for the non-final "waiting" state, `UNKNOWN:state` otherwise.
pub fn report_stat(state: u8, error_code: u8) -> String {
    match (state, error_code) {
        (report_state::DELIVERED, _) => "DELIVRD".to_string(),
        (report_state::FAILED, 0) => "UNDELIV".to_string(),
        (report_state::FAILED, code) => format!("UNDELIV:{code}"),
        (report_state::WAITING, _) => "ACCEPTD".to_string(),
        (other, _) => format!("UNKNOWN:{other}"),
    }
}

/// The UserNumber form of a recipient: SGIP wants the "86" prefix on mainland mobile numbers.
/// `+86…` and `0086…` are rewritten; other numbers are sent as given.
pub fn user_number(dest: &str) -> String {
    let national = national_number(dest.trim_start_matches('+'));
    if national.len() == 11
        && national.starts_with('1')
        && national.bytes().all(|b| b.is_ascii_digit())
    {
        format!("{COUNTRY_PREFIX}{national}")
    } else {
        dest.to_string()
    }
}

/// A received UserNumber without its "86" prefix, so it compares equal to the number Herald was
/// given: `8613800138000` → `13800138000`. Anything else is returned unchanged.
pub fn national_number(number: &str) -> &str {
    let n = number.strip_prefix("00").unwrap_or(number);
    match n.strip_prefix(COUNTRY_PREFIX) {
        Some(rest) if rest.len() == 11 && rest.starts_with('1') => rest,
        _ => number,
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn numbers_gain_and_lose_the_country_prefix() {
        for (given, wire) in [
            ("13800138000", "8613800138000"),
            ("8613800138000", "8613800138000"),
            ("+8613800138000", "8613800138000"),
            ("008613800138000", "8613800138000"),
            ("10086", "10086"),
            ("", ""),
        ] {
            assert_eq!(user_number(given), wire, "{given}");
        }
        assert_eq!(national_number("8613800138000"), "13800138000");
        assert_eq!(national_number("13800138000"), "13800138000");
        assert_eq!(national_number("8610086"), "8610086");
    }

    #[test]
    fn report_stat_uses_the_cmpp_vocabulary() {
        assert_eq!(report_stat(0, 0), "DELIVRD");
        assert_eq!(report_stat(2, 0), "UNDELIV");
        assert_eq!(report_stat(2, 25), "UNDELIV:25");
        assert_eq!(report_stat(1, 0), "ACCEPTD");
        assert_eq!(report_stat(9, 0), "UNKNOWN:9");
    }

    #[test]
    fn flow_control_codes_are_retryable() {
        for code in [11, 33, 88] {
            assert!(result_meaning(code).0, "{code}");
        }
        for code in [1, 5, 6, 8, 29] {
            assert!(!result_meaning(code).0, "{code}");
        }
    }
}
