//! Which carrier a number belongs to, and which route (ordered list of links) carries a message.
//!
//! Chinese mobile numbers are assigned to carriers by their leading digits (number segments). The
//! built-in table below is the public allocation; an operator replaces a carrier's segments in the
//! policy when the regulator adds some, and lists ported numbers individually.

use std::str::FromStr;

use crate::policy::{DispatchPolicy, Route, CLASS_NAMES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Mobile,
    Unicom,
    Telecom,
    /// Not a Chinese mainland mobile number, or a segment no table knows.
    Other,
}

impl FromStr for Carrier {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "mobile" => Carrier::Mobile,
            "unicom" => Carrier::Unicom,
            "telecom" => Carrier::Telecom,
            "other" => Carrier::Other,
            _ => return Err(()),
        })
    }
}

impl Carrier {
    pub fn name(self) -> &'static str {
        match self {
            Carrier::Mobile => "mobile",
            Carrier::Unicom => "unicom",
            Carrier::Telecom => "telecom",
            Carrier::Other => "other",
        }
    }
}

/// Built-in number segments (the leading 3 or 4 digits of an 11-digit number).
const BUILT_IN: &[(Carrier, &[&str])] = &[
    (
        Carrier::Mobile,
        &[
            "1340", "1341", "1342", "1343", "1344", "1345", "1346", "1347", "1348", "135", "136",
            "137", "138", "139", "147", "148", "150", "151", "152", "157", "158", "159", "165",
            "1703", "1705", "1706", "172", "178", "182", "183", "184", "187", "188", "195", "197",
            "198",
        ],
    ),
    (
        Carrier::Unicom,
        &[
            "130", "131", "132", "145", "146", "155", "156", "166", "167", "1704", "1707", "1708",
            "1709", "171", "175", "176", "185", "186", "196",
        ],
    ),
    (
        Carrier::Telecom,
        &[
            "133", "1349", "149", "153", "162", "1700", "1701", "1702", "173", "174", "177", "180",
            "181", "189", "190", "191", "193", "199",
        ],
    ),
];

/// The carrier of a normalised number (as `validate::normalise_mobile` returns it).
pub fn carrier_of(number: &str, policy: &DispatchPolicy) -> Carrier {
    if let Some(name) = policy.ported_numbers.get(number) {
        return name.parse().unwrap_or(Carrier::Other);
    }
    if number.len() != 11 || !number.starts_with('1') {
        return Carrier::Other;
    }
    // The carrier with the longest matching segment; a carrier's segments are the policy's when it
    // lists them, the built-in ones otherwise.
    let longest = |segments: &mut dyn Iterator<Item = &str>| {
        segments
            .filter(|segment| number.starts_with(segment))
            .map(str::len)
            .max()
    };
    BUILT_IN
        .iter()
        .filter_map(|(carrier, built_in)| {
            let matched = match policy.number_segments.get(carrier.name()) {
                Some(list) => longest(&mut list.iter().map(String::as_str)),
                None => longest(&mut built_in.iter().copied()),
            };
            matched.map(|len| (len, *carrier))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, carrier)| carrier)
        .unwrap_or(Carrier::Other)
}

/// The first route of the policy whose conditions all hold for a message to `recipient`, from
/// `client`, of `priority`. A message to several recipients is routed by its first one.
pub fn route_for<'a>(
    policy: &'a DispatchPolicy,
    recipient: &str,
    client: &str,
    priority: u32,
) -> Option<&'a Route> {
    let carrier = carrier_of(recipient, policy);
    let class = CLASS_NAMES
        .get(priority as usize)
        .copied()
        .unwrap_or("bulk");
    policy.routes.iter().find(|r| {
        (r.carriers.is_empty() || r.carriers.iter().any(|c| c == carrier.name()))
            && (r.prefixes.is_empty()
                || r.prefixes.iter().any(|p| recipient.starts_with(p.as_str())))
            && (r.clients.is_empty() || r.clients.iter().any(|c| c == client))
            && (r.classes.is_empty() || r.classes.iter().any(|c| c == class))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_segments_pick_the_carrier_by_the_longest_prefix() {
        let policy = DispatchPolicy::default();
        for (number, carrier) in [
            ("13800138000", Carrier::Mobile),
            ("13400000000", Carrier::Mobile),
            ("13490000000", Carrier::Telecom),
            ("18600000000", Carrier::Unicom),
            ("17030000000", Carrier::Mobile),
            ("17040000000", Carrier::Unicom),
            ("17000000000", Carrier::Telecom),
            ("19900000000", Carrier::Telecom),
            ("+447911123456", Carrier::Other),
        ] {
            assert_eq!(carrier_of(number, &policy), carrier, "{number}");
        }
    }

    #[test]
    fn ported_numbers_and_overridden_segments_win() {
        let mut policy = DispatchPolicy::default();
        policy
            .ported_numbers
            .insert("13800138000".into(), "telecom".into());
        policy
            .number_segments
            .insert("unicom".into(), vec!["192".into()]);
        assert_eq!(carrier_of("13800138000", &policy), Carrier::Telecom);
        assert_eq!(carrier_of("19200000000", &policy), Carrier::Unicom);
        assert_eq!(
            carrier_of("18600000000", &policy),
            Carrier::Other,
            "unicom's built-in segments were replaced"
        );
    }

    #[test]
    fn the_first_matching_route_wins() {
        let route = |name: &str, carriers: &[&str], classes: &[&str], clients: &[&str]| Route {
            name: name.into(),
            carriers: carriers.iter().map(|s| s.to_string()).collect(),
            classes: classes.iter().map(|s| s.to_string()).collect(),
            clients: clients.iter().map(|s| s.to_string()).collect(),
            links: vec!["l".into()],
            ..Route::default()
        };
        let policy = DispatchPolicy {
            routes: vec![
                route("alarms", &[], &["alarm"], &[]),
                route("billing-mobile", &["mobile"], &[], &["billing"]),
                route("mobile", &["mobile"], &[], &[]),
                route("rest", &[], &[], &[]),
            ],
            ..DispatchPolicy::default()
        };
        let name = |to, client, priority| {
            route_for(&policy, to, client, priority).map(|r| r.name.as_str())
        };
        assert_eq!(name("18600000000", "erp", 0), Some("alarms"));
        assert_eq!(name("13800138000", "billing", 3), Some("billing-mobile"));
        assert_eq!(name("13800138000", "erp", 3), Some("mobile"));
        assert_eq!(name("18600000000", "erp", 3), Some("rest"));
    }
}
