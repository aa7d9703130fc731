//! The dispatch policy's `[replies]` section: which client system a subscriber's reply (an MO
//! message) belongs to when a rule says so, and how long a long reply may wait for its missing
//! parts. Rules are matched on the receiving node and the answer travels in the `MoReceived`
//! event (see `herald_raft::replies`), as a submission's route does in `MessageSubmitted`.
//! Without a matching rule, the projection routes a reply to the client that last sent a
//! message to the subscriber, else leaves it unrouted.

use serde::{Deserialize, Serialize};

use crate::policy::PolicyError;

/// Shortest and longest wait for a long reply's missing parts: long enough for a handset's
/// parts (seconds apart) and a carrier's resends, short enough that a fragment is not held for
/// days.
const MIN_INCOMPLETE_AFTER_MS: u64 = 1_000;
const MAX_INCOMPLETE_AFTER_MS: u64 = 24 * 3600 * 1000;
/// Client ids are at most this long (as the API's client names).
const MAX_CLIENT_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Replies {
    /// Tried in order: the first rule whose `dest-prefix` starts the reply's destination (the
    /// SP number with its extension) names the client.
    pub rules: Vec<ReplyRule>,
    /// A long reply still missing parts this long after its first part is passed on marked
    /// incomplete. It is also how long a finished reply's parts are remembered, so a carrier's
    /// resend of one of them makes no second reply.
    pub incomplete_after_ms: u64,
}

impl Default for Replies {
    fn default() -> Self {
        Replies {
            rules: Vec::new(),
            incomplete_after_ms: 300_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReplyRule {
    /// Digits the destination starts with, e.g. `1069000191` for extension 1 of SP number
    /// 106900019.
    pub dest_prefix: String,
    /// The client system (the client of its API key) that gets these replies.
    pub client: String,
}

impl Replies {
    /// The client the first matching rule names for a reply to `dest`.
    pub fn client_for(&self, dest: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| dest.starts_with(&r.dest_prefix))
            .map(|r| r.client.as_str())
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        for (i, rule) in self.rules.iter().enumerate() {
            let field = |name: &str| format!("replies.rules[{i}].{name}");
            if rule.dest_prefix.is_empty() || !rule.dest_prefix.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(PolicyError {
                    field: field("dest-prefix"),
                    rule: format!(
                        "{:?} must be digits (an SP number, optionally with its extension)",
                        rule.dest_prefix
                    ),
                });
            }
            if rule.client.is_empty() || rule.client.len() > MAX_CLIENT_LEN {
                return Err(PolicyError {
                    field: field("client"),
                    rule: format!(
                        "a client id of 1 to {MAX_CLIENT_LEN} characters, got {:?}",
                        rule.client
                    ),
                });
            }
        }
        if !(MIN_INCOMPLETE_AFTER_MS..=MAX_INCOMPLETE_AFTER_MS).contains(&self.incomplete_after_ms)
        {
            return Err(PolicyError {
                field: "replies.incomplete-after-ms".into(),
                rule: format!(
                    "between {MIN_INCOMPLETE_AFTER_MS} and {MAX_INCOMPLETE_AFTER_MS}, got {}",
                    self.incomplete_after_ms
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::DispatchPolicy;

    #[test]
    fn the_first_matching_rule_names_the_client() {
        let policy = DispatchPolicy::parse(
            r#"
            [replies]
            incomplete-after-ms = 60000
            [[replies.rules]]
            dest-prefix = "1069000191"
            client = "crm"
            [[replies.rules]]
            dest-prefix = "106900019"
            client = "billing"
            "#,
            &[],
        )
        .unwrap();
        let replies = &policy.replies;
        assert_eq!(replies.client_for("10690001912"), Some("crm"));
        assert_eq!(replies.client_for("1069000192"), Some("billing"));
        assert_eq!(replies.client_for("10690002"), None);
        assert_eq!(replies.incomplete_after_ms, 60_000);
        assert_eq!(
            DispatchPolicy::default().replies.incomplete_after_ms,
            300_000
        );
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        for (toml, field) in [
            (
                "[[replies.rules]]\ndest-prefix = \"10690x\"\nclient = \"crm\"",
                "replies.rules[0].dest-prefix",
            ),
            (
                "[[replies.rules]]\ndest-prefix = \"\"\nclient = \"crm\"",
                "replies.rules[0].dest-prefix",
            ),
            (
                "[[replies.rules]]\ndest-prefix = \"1069\"\nclient = \"\"",
                "replies.rules[0].client",
            ),
            (
                "[replies]\nincomplete-after-ms = 5",
                "replies.incomplete-after-ms",
            ),
        ] {
            let e = DispatchPolicy::parse(toml, &[]).expect_err(toml);
            assert_eq!(e.field, field, "{toml}: {e}");
        }
        let e = DispatchPolicy::parse("[[replies.rules]]\ndest-prefix = \"1069\"", &[])
            .expect_err("client missing");
        assert!(e.to_string().contains("client"), "{e}");
    }
}
