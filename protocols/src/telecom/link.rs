//! What the SMGP and CNGP clients share above the wire: the `login-mode` link option, and the
//! conversion of a status report into a [`DeliveryReport`]. The PDUs themselves stay in each
//! client.

use std::collections::BTreeMap;

use super::Receipt;
use crate::client::DeliveryReport;

/// LoginMode 2: submits, reports and MO on one connection, which is what a Herald link is.
pub const DEFAULT_LOGIN_MODE: u8 = 2;

/// Reads the link options of an SMGP or CNGP link. The only option is `login-mode`: `send` (0),
/// `receive` (1) or `transmit` (2, the default); any other name or value is refused.
pub fn parse_login_mode(options: &BTreeMap<String, String>, protocol: &str) -> Result<u8, String> {
    let mut mode = DEFAULT_LOGIN_MODE;
    for (name, value) in options {
        match name.as_str() {
            "login-mode" => {
                mode = match value.trim().to_ascii_lowercase().as_str() {
                    "0" | "send" => 0,
                    "1" | "receive" => 1,
                    "2" | "transmit" | "transceiver" => 2,
                    other => {
                        return Err(format!(
                    "option login-mode = {other:?}: must be send (0), receive (1) or transmit (2)"
                ))
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown option {other:?}: {protocol} links take only \"login-mode\""
                ))
            }
        }
    }
    Ok(mode)
}

/// A report as the application sees it: the MsgID in its text form (as in the Submit_Resp's
/// `carrier_id`) and the raw stat. `dest` is the Deliver's SrcTermID, the handset the report is
/// about.
pub fn delivery_report(receipt: Receipt, dest: String) -> DeliveryReport {
    DeliveryReport::new(
        receipt.msg_id.to_string(),
        dest,
        receipt.stat,
        receipt.submit_date,
        receipt.done_date,
    )
    .with_error_code(receipt.err)
}

/// Recognises a concatenation UDH at the front of `payload` (8-bit `05 00 03 ref total n` or
/// 16-bit `06 08 04 refH refL total n`, with 1 ≤ n ≤ total), for CNGP, whose 2.0 layout has no
/// TP_udhi flag (*unconfirmed*): content starting any other way is taken as plain text.
pub fn sniff_concat(payload: &[u8]) -> Option<crate::text::Concat> {
    let (total, number, reference) = match payload {
        [5, 0, 3, r, t, n, ..] => (*t, *n, u16::from(*r)),
        [6, 8, 4, rh, rl, t, n, ..] => (*t, *n, u16::from_be_bytes([*rh, *rl])),
        _ => return None,
    };
    (number >= 1 && number <= total).then_some(crate::text::Concat {
        reference,
        total,
        number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sniffs_only_well_formed_concatenation_headers() {
        let c = sniff_concat(&[5, 0, 3, 9, 3, 2, b'x']).expect("8-bit");
        assert_eq!((c.reference, c.total, c.number), (9, 3, 2));
        let c = sniff_concat(&[6, 8, 4, 1, 2, 2, 2]).expect("16-bit");
        assert_eq!((c.reference, c.total, c.number), (0x0102, 2, 2));
        assert!(sniff_concat(&[5, 0, 3, 9, 3, 4]).is_none());
        assert!(sniff_concat(&[5, 0, 3, 9, 3, 0]).is_none());
        assert!(sniff_concat(b"hello").is_none());
        assert!(sniff_concat(&[]).is_none());
    }

    #[test]
    fn login_mode_option() {
        assert_eq!(parse_login_mode(&opts(&[]), "SMGP"), Ok(2));
        assert_eq!(
            parse_login_mode(&opts(&[("login-mode", "send")]), "SMGP"),
            Ok(0)
        );
        assert_eq!(
            parse_login_mode(&opts(&[("login-mode", "1")]), "SMGP"),
            Ok(1)
        );
        assert!(parse_login_mode(&opts(&[("login-mode", "3")]), "SMGP").is_err());
        let e = parse_login_mode(&opts(&[("bind", "transceiver")]), "CNGP").unwrap_err();
        assert!(e.contains("\"bind\"") && e.contains("CNGP"), "{e}");
    }
}
