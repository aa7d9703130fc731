//! What makes two submissions under one idempotency key the *same request*.
//!
//! A client may retry a submission with its key and get the first message back (guarantee 2 of
//! PRODUCT.md), but a key reused for other content is a client bug that must be refused, not
//! answered with an unrelated message (as Stripe's API does). The node that receives a
//! submission digests what the client asked for and carries the digest in `MessageSubmitted`;
//! the projection keeps it beside the key and compares — on every node alike, since the digest
//! is in the log.
//!
//! Only what the client chose goes in: the numbers as normalised (in any order), the text, the
//! class, the link it named, its own reference and urgency. Nothing a retry computes anew (a send
//! time given relative to now, the route the policy picks, the validity's end) may go in, or an
//! honest retry would be refused.

use sha2::{Digest, Sha256};

/// The fields of a submission that a retry must repeat exactly.
#[derive(Debug, Clone, Copy)]
pub struct RequestContent<'a> {
    /// As normalised by validation; their order does not matter.
    pub recipients: &'a [String],
    pub text: &'a str,
    /// 0 = alarm … 3 = bulk, after defaults are applied.
    pub priority: u32,
    /// The link the client named (empty: it let the policy choose).
    pub named_link: &'a str,
    pub client_ref: &'a str,
    pub urgent: bool,
}

/// Bytes of the digest kept per key: a collision needs two different requests under one client's
/// one key, and costs only what happened before digests existed (the earlier message returned).
pub const DIGEST_LEN: usize = 16;

/// A digest of `content`, [`DIGEST_LEN`] bytes. The encoding is length-prefixed, so no two
/// different requests share an input; it must never change, since stored digests are compared
/// with new ones across versions.
pub fn request_digest(content: &RequestContent<'_>) -> Vec<u8> {
    let mut recipients: Vec<&str> = content.recipients.iter().map(String::as_str).collect();
    recipients.sort_unstable();
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(b"herald.request.v1");
    field(&(recipients.len() as u64).to_be_bytes());
    for number in recipients {
        field(number.as_bytes());
    }
    field(content.text.as_bytes());
    field(&content.priority.to_be_bytes());
    field(content.named_link.as_bytes());
    field(content.client_ref.as_bytes());
    field(&[u8::from(content.urgent)]);
    hash.finalize()[..DIGEST_LEN].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content<'a>(recipients: &'a [String], text: &'a str) -> RequestContent<'a> {
        RequestContent {
            recipients,
            text,
            priority: 1,
            named_link: "",
            client_ref: "",
            urgent: false,
        }
    }

    #[test]
    fn the_same_request_has_the_same_digest_whatever_the_recipients_order() {
        let ab = ["13800138000".to_string(), "13900139000".to_string()];
        let ba = [ab[1].clone(), ab[0].clone()];
        let digest = request_digest(&content(&ab, "hi"));
        assert_eq!(digest.len(), DIGEST_LEN);
        assert_eq!(digest, request_digest(&content(&ba, "hi")));
    }

    #[test]
    fn every_field_the_client_chose_changes_the_digest() {
        let one = ["13800138000".to_string()];
        let base = content(&one, "hi");
        let digest = request_digest(&base);
        let other = ["13900139000".to_string()];
        let changed = [
            content(&other, "hi"),
            content(&one, "hi!"),
            RequestContent {
                priority: 0,
                ..base
            },
            RequestContent {
                named_link: "mobile",
                ..base
            },
            RequestContent {
                client_ref: "r1",
                ..base
            },
            RequestContent {
                urgent: true,
                ..base
            },
        ];
        for c in changed {
            assert_ne!(request_digest(&c), digest, "{c:?}");
        }
        // Field boundaries count: moving bytes from one field to the next is another request.
        let split_a = RequestContent {
            text: "ab",
            client_ref: "c",
            ..base
        };
        let split_b = RequestContent {
            text: "a",
            client_ref: "bc",
            ..base
        };
        assert_ne!(request_digest(&split_a), request_digest(&split_b));
    }
}
