//! Login authentication shared by SMGP 3.0.3 and CNGP 2.0.
//!
//! AuthenticatorClient = MD5(ClientID + 7 × 0x00 + shared secret + timestamp), the timestamp
//! written as ten ASCII digits (MMDDHHMMSS, which is also the u32 TimeStamp field). The gateway
//! answers with MD5(Status + AuthenticatorClient + shared secret), Status as a 4-byte big-endian
//! integer [SMGP §Login_Resp]; CNGP's AuthenticatorServer is computed the same way here
//! (*unconfirmed* for real CNGP gateways, so clients only log a mismatch).

use md5::{Digest, Md5};

pub use crate::cmpp::auth::timestamp;

pub fn authenticator_client(client_id: &str, secret: &str, timestamp: u32) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(client_id.as_bytes());
    h.update([0u8; 7]);
    h.update(secret.as_bytes());
    h.update(format!("{timestamp:010}").as_bytes());
    h.finalize().into()
}

pub fn authenticator_server(status: u32, client: &[u8; 16], secret: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(status.to_be_bytes());
    h.update(client);
    h.update(secret.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_built_md5_input() {
        let mut input = b"12345678".to_vec();
        input.extend_from_slice(&[0; 7]);
        input.extend_from_slice(b"secret");
        input.extend_from_slice(b"0116170000");
        let expected: [u8; 16] = Md5::digest(&input).into();
        assert_eq!(
            authenticator_client("12345678", "secret", 116_170_000),
            expected
        );
        assert_ne!(
            authenticator_client("12345678", "other", 116_170_000),
            expected
        );
    }

    #[test]
    fn server_authenticator_covers_status_and_secret() {
        let c = [3u8; 16];
        assert_ne!(
            authenticator_server(0, &c, "s"),
            authenticator_server(21, &c, "s")
        );
        assert_ne!(
            authenticator_server(0, &c, "s"),
            authenticator_server(0, &c, "t")
        );
    }
}
