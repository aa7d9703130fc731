//! One handle for a carrier link of any protocol, so the node dispatches without knowing which
//! protocol a link speaks. Each protocol's client keeps the same shape (start, split, submit,
//! is_connected, shutdown); this enum only routes the calls.
//!
//! Adding a protocol: a [`Protocol`] variant with its names, a [`CarrierClient`] variant, and one
//! arm in each method below. What every protocol shares — the link's signature — lives in
//! [`LinkClient`] itself.

use std::fmt;
use std::str::FromStr;

use tokio::sync::mpsc;

use crate::client::{
    ClientEvent, CmppClient, LinkSettings, OutboundSegment, SendError, SubmitOutcome,
};
use crate::signature::Signature;
use crate::text::{split_signed, AsciiParts, Segment};
use crate::trace::Submitted;

/// A carrier protocol (and version) a link can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// CMPP 3.0 (China Mobile).
    Cmpp3,
    /// CMPP 2.0 (China Mobile, older gateways).
    Cmpp2,
    /// SMGP 3.0.3 (China Telecom).
    Smgp,
    /// CNGP 2.0 (China Netcom).
    Cngp,
    /// SMPP, version from the link's `version` option (default 3.4).
    Smpp,
    /// SMPP 3.3 (no TLVs, no transceiver: binds a transmitter + receiver pair by default).
    Smpp33,
    /// SMPP 3.4.
    Smpp34,
    /// SMPP 5.0.
    Smpp50,
    /// SGIP 1.2 (China Unicom).
    Sgip,
}

impl Protocol {
    /// Every accepted spelling, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "cmpp", "cmpp3", "cmpp2", "cmpp20", "smgp", "smgp3", "cngp", "cngp2", "smpp", "smpp33",
        "smpp34", "smpp50", "sgip",
    ];

    /// Checks a link's protocol options the way the client will when it starts, so a
    /// configuration can be refused up front (the client would otherwise stay down and say why).
    pub fn check_options(
        self,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), String> {
        Signature::from_options(options)?;
        let options = &Signature::other_options(options);
        match self {
            Protocol::Cmpp3 => crate::client::CmppOptions::parse(options, None).map(|_| ()),
            Protocol::Cmpp2 => {
                crate::client::CmppOptions::parse(options, Some(crate::cmpp::Version::V2))
                    .map(|_| ())
            }
            Protocol::Smgp => crate::smgp_client::SmgpOptions::parse(options).map(|_| ()),
            Protocol::Cngp => crate::cngp_client::CngpOptions::parse(options).map(|_| ()),
            Protocol::Sgip => crate::sgip_client::SgipOptions::parse(options).map(|_| ()),
            Protocol::Smpp | Protocol::Smpp33 | Protocol::Smpp34 | Protocol::Smpp50 => {
                crate::smpp_client::SmppOptions::parse(options, self.smpp_version()).map(|_| ())
            }
        }
    }
}

impl Protocol {
    /// Whether a refusal code is the carrier asking to send less (flow control) rather than a
    /// verdict on the message: the sender slows down and offers the message again.
    pub fn is_flow_control(self, code: u32) -> bool {
        match self {
            // CMPP Result 8: flow control error.
            Protocol::Cmpp3 | Protocol::Cmpp2 => code == 8,
            // ESME_RTHROTTLED and ESME_RMSGQFUL.
            Protocol::Smpp | Protocol::Smpp33 | Protocol::Smpp34 | Protocol::Smpp50 => {
                code == crate::smpp::status::ESME_RTHROTTLED || code == 0x14
            }
            // SGIP: 11 node busy (the specification's own signal), 33 SMSC queue full (as SMPP's
            // ESME_RMSGQFUL above) and 88, the flow-control code some gateways answer (see
            // `crate::sgip::result_meaning`). Counted as flow control, they slow the link down
            // instead of using up the message's attempts.
            Protocol::Sgip => matches!(code, 11 | 33 | 88),
            // SMGP has no flow-control code: 1 (system busy) and 75 (over the sending limit) are
            // how gateways say it (see `crate::smgp::status`).
            Protocol::Smgp => code == 1 || code == 75,
            // CNGP's codes are unconfirmed (see `crate::cngp::status`): only 1, system busy, is
            // taken as flow control. A flow-control answer is retried without counting against
            // the message's attempts, so an unknown code must not be read as one.
            Protocol::Cngp => code == 1,
        }
    }

    /// The interface_version an SMPP protocol name fixes (`None` for plain `smpp` and non-SMPP).
    fn smpp_version(self) -> Option<u8> {
        match self {
            Protocol::Smpp33 => Some(crate::smpp::VERSION_3_3),
            Protocol::Smpp34 => Some(crate::smpp::VERSION_3_4),
            Protocol::Smpp50 => Some(crate::smpp::VERSION_5_0),
            _ => None,
        }
    }
}

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cmpp" | "cmpp3" | "cmpp30" | "cmpp-3.0" => Ok(Protocol::Cmpp3),
            "cmpp2" | "cmpp20" | "cmpp-2.0" => Ok(Protocol::Cmpp2),
            "smgp" | "smgp3" | "smgp30" | "smgp-3.0" | "smgp-3.0.3" => Ok(Protocol::Smgp),
            "cngp" | "cngp2" | "cngp20" | "cngp-2.0" => Ok(Protocol::Cngp),
            "smpp" => Ok(Protocol::Smpp),
            "smpp33" | "smpp-3.3" => Ok(Protocol::Smpp33),
            "smpp34" | "smpp-3.4" => Ok(Protocol::Smpp34),
            "smpp50" | "smpp5" | "smpp-5.0" => Ok(Protocol::Smpp50),
            "sgip" | "sgip12" | "sgip-1.2" => Ok(Protocol::Sgip),
            _ => Err(UnknownProtocol(s.to_string())),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Cmpp3 => "cmpp3",
            Protocol::Cmpp2 => "cmpp2",
            Protocol::Smgp => "smgp",
            Protocol::Cngp => "cngp",
            Protocol::Smpp => "smpp",
            Protocol::Smpp33 => "smpp33",
            Protocol::Smpp34 => "smpp34",
            Protocol::Smpp50 => "smpp50",
            Protocol::Sgip => "sgip",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown protocol {0:?} (known: {names})", names = Protocol::NAMES.join(", "))]
pub struct UnknownProtocol(pub String);

/// A running link of some protocol, with the link's signature. Cloning shares the link.
#[derive(Clone)]
pub struct LinkClient {
    carrier: CarrierClient,
    /// Counted in every split (see [`crate::signature`]); `None` when the link has none.
    signature: Option<Signature>,
}

/// The protocol client under a [`LinkClient`].
#[derive(Clone)]
pub enum CarrierClient {
    Cmpp(CmppClient),
    Smgp(crate::smgp_client::SmgpClient),
    Cngp(crate::cngp_client::CngpClient),
    Smpp(crate::smpp_client::SmppClient),
    Sgip(crate::sgip_client::SgipClient),
}

impl LinkClient {
    /// Starts the link's connection task (connect, log in, reconnect with backoff until shutdown).
    /// The signature options are read here and the rest go to the protocol's client. Signature
    /// options that do not parse (a configuration that skipped [`Protocol::check_options`]) are
    /// left in place, so the protocol's client refuses them and the link stays down.
    pub fn start(
        protocol: Protocol,
        mut settings: LinkSettings,
    ) -> (LinkClient, mpsc::Receiver<ClientEvent>) {
        let signature = match Signature::from_options(&settings.options) {
            Ok(signature) => {
                settings.options = Signature::other_options(&settings.options);
                signature
            }
            Err(e) => {
                tracing::error!(link = %settings.name, "link options refused: {e}");
                None
            }
        };
        let (carrier, events) = match protocol {
            Protocol::Cmpp3 => {
                let (client, events) = CmppClient::start(settings);
                (CarrierClient::Cmpp(client), events)
            }
            Protocol::Cmpp2 => {
                let (client, events) =
                    CmppClient::start_as(settings, Some(crate::cmpp::Version::V2));
                (CarrierClient::Cmpp(client), events)
            }
            Protocol::Smgp => {
                let (client, events) = crate::smgp_client::SmgpClient::start(settings);
                (CarrierClient::Smgp(client), events)
            }
            Protocol::Cngp => {
                let (client, events) = crate::cngp_client::CngpClient::start(settings);
                (CarrierClient::Cngp(client), events)
            }
            Protocol::Smpp | Protocol::Smpp33 | Protocol::Smpp34 | Protocol::Smpp50 => {
                let (client, events) =
                    crate::smpp_client::SmppClient::start_as(settings, protocol.smpp_version());
                (CarrierClient::Smpp(client), events)
            }
            Protocol::Sgip => {
                let (client, events) = crate::sgip_client::SgipClient::start(settings);
                (CarrierClient::Sgip(client), events)
            }
        };
        (LinkClient { carrier, signature }, events)
    }

    /// The protocol's own client, for what only that protocol has.
    pub fn carrier(&self) -> &CarrierClient {
        &self.carrier
    }

    pub fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }

    /// Splits a message's text into the parts this protocol sends (encoding and part sizes differ
    /// between protocols), leaving room for the link's signature in the part it lands in and
    /// putting it in when Herald adds it. Deterministic in the number of parts, so a resend has
    /// the same segments.
    pub fn split(&self, text: &str) -> Vec<Segment> {
        let signature = self.signature.as_ref();
        match &self.carrier {
            CarrierClient::Cmpp(_) => split_signed(text, AsciiParts::CMPP, signature),
            // SMGP MT content is at most 140 octets in every coding; CNGP is taken to match.
            CarrierClient::Smgp(_) | CarrierClient::Cngp(_) => {
                split_signed(text, AsciiParts::OCTETS_140, signature)
            }
            // GSM 7-bit when the text fits it (160/153), else UCS2 (70/67).
            CarrierClient::Smpp(c) => c.split_signed(text, signature),
            // SGIP shares CMPP's codings and UDH scheme (TP_udhi).
            CarrierClient::Sgip(_) => split_signed(text, AsciiParts::CMPP, signature),
        }
    }

    pub async fn submit(&self, segment: OutboundSegment) -> Result<SubmitOutcome, SendError> {
        self.submit_traced(segment).await.result
    }

    /// Submits one segment and says which PDUs that took (command, sequence, time, the
    /// response's command and raw status), for the protocol trace.
    pub async fn submit_traced(&self, segment: OutboundSegment) -> Submitted {
        match &self.carrier {
            CarrierClient::Cmpp(c) => c.submit_traced(segment).await,
            CarrierClient::Smgp(c) => c.submit_traced(segment).await,
            CarrierClient::Cngp(c) => c.submit_traced(segment).await,
            CarrierClient::Smpp(c) => c.submit_traced(segment).await,
            CarrierClient::Sgip(c) => c.submit_traced(segment).await,
        }
    }

    pub fn is_connected(&self) -> bool {
        match &self.carrier {
            CarrierClient::Cmpp(c) => c.is_connected(),
            CarrierClient::Smgp(c) => c.is_connected(),
            CarrierClient::Cngp(c) => c.is_connected(),
            CarrierClient::Smpp(c) => c.is_connected(),
            CarrierClient::Sgip(c) => c.is_connected(),
        }
    }

    pub async fn shutdown(&self) {
        match &self.carrier {
            CarrierClient::Cmpp(c) => c.shutdown().await,
            CarrierClient::Smgp(c) => c.shutdown().await,
            CarrierClient::Cngp(c) => c.shutdown().await,
            CarrierClient::Smpp(c) => c.shutdown().await,
            CarrierClient::Sgip(c) => c.shutdown().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flow control is what each protocol's own result table calls "slow down", nothing more:
    /// a flow-control answer is retried without counting against the message's attempts.
    #[test]
    fn flow_control_codes_per_protocol() {
        let flow = |p: Protocol| (0..=u32::from(u16::MAX)).filter(move |&c| p.is_flow_control(c));
        assert_eq!(flow(Protocol::Cmpp3).collect::<Vec<_>>(), [8]);
        assert_eq!(flow(Protocol::Cmpp2).collect::<Vec<_>>(), [8]);
        assert_eq!(flow(Protocol::Smpp34).collect::<Vec<_>>(), [0x14, 0x58]);
        assert_eq!(flow(Protocol::Sgip).collect::<Vec<_>>(), [11, 33, 88]);
        assert_eq!(flow(Protocol::Smgp).collect::<Vec<_>>(), [1, 75]);
        assert_eq!(flow(Protocol::Cngp).collect::<Vec<_>>(), [1]);
        for code in [11u8, 33, 88] {
            assert!(
                crate::sgip::result_meaning(code).0,
                "SGIP {code} is retryable"
            );
        }
    }

    /// The two views of a refusal agree: every code a protocol reads as flow control is also
    /// retryable in the table its client judges submit responses with, so a throttled message
    /// is never failed for good.
    #[test]
    fn every_flow_control_code_is_retryable_in_its_protocols_own_table() {
        let table = |p: Protocol, code: u32| -> (bool, &'static str) {
            match p {
                Protocol::Cmpp3 | Protocol::Cmpp2 => crate::cmpp::submit_result(code),
                Protocol::Smpp | Protocol::Smpp33 | Protocol::Smpp34 | Protocol::Smpp50 => {
                    crate::smpp::submit_status(code)
                }
                Protocol::Sgip => match u8::try_from(code) {
                    Ok(code) => crate::sgip::result_meaning(code),
                    Err(_) => (false, "out of range"),
                },
                Protocol::Smgp => crate::smgp::status(code),
                Protocol::Cngp => crate::cngp::status(code),
            }
        };
        for protocol in [
            Protocol::Cmpp3,
            Protocol::Cmpp2,
            Protocol::Smpp34,
            Protocol::Sgip,
            Protocol::Smgp,
            Protocol::Cngp,
        ] {
            for code in 0..=u32::from(u16::MAX) {
                if protocol.is_flow_control(code) {
                    assert!(table(protocol, code).0, "{protocol} {code} is retryable");
                }
            }
            // An unknown code is permanent: a misread code fails one message, not a storm.
            assert!(!table(protocol, 0xFFFF).0, "{protocol}: unknown codes");
        }
        // The permanent verdicts the trace shows most often.
        assert!(
            !crate::cmpp::submit_result(13).0,
            "CMPP Dest_terminal_Id error"
        );
        assert!(!crate::smpp::submit_status(0x0B).0, "SMPP ESME_RINVDSTADR");
    }

    #[test]
    fn signature_options_are_checked_for_every_protocol_and_hidden_from_its_parser() {
        let options = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let signed = options(&[
            ("signature", "【国网】"),
            ("signature-added-by", "carrier"),
            ("signature-position", "suffix"),
        ]);
        for protocol in [
            Protocol::Cmpp3,
            Protocol::Smgp,
            Protocol::Cngp,
            Protocol::Smpp,
        ] {
            assert_eq!(protocol.check_options(&signed), Ok(()), "{protocol}");
        }
        let err = Protocol::Cmpp3
            .check_options(&options(&[("signature", "【国网】")]))
            .unwrap_err();
        assert!(err.contains("signature-added-by is required"), "{err}");
    }
}
