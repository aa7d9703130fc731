//! What SMGP 3.0.3 (China Telecom) and CNGP 2.0 (China Netcom) really share on the wire: the
//! 10-byte BCD MsgID, login authentication, Tag-Length-Value framing of optional parameters, the
//! status report text, and byte-level reading and framing helpers.
//!
//! [`link`] holds the little the two clients share above the wire (the `login-mode` option,
//! report conversion). It holds no PDU layouts and no command ids: [`crate::smgp`] and [`crate::cngp`] each lay out
//! their own PDUs from their own specification, with their own TLV tables. Sessions live in
//! [`crate::session`].

pub mod auth;
pub mod link;
pub mod msgid;
pub mod receipt;
pub mod tlv;
pub mod wire;

pub use msgid::{MsgId10, MsgId10Generator};
pub use receipt::Receipt;
pub use tlv::{Tlv, TlvKind, TlvSpec, TlvValue, Tlvs};
pub use wire::CodecError;
