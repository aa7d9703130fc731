//! Replies: how mobile-originated (MO) events become one reply per subscriber message, routed to
//! a client system. Part of the pure projection (see [`crate::projection`]): it reads and writes
//! only through [`Kv`] and takes time only from the events.
//!
//! Every MO part a carrier delivers is its own `MoReceived` event, whichever link, connection or
//! node received it, so the parts of one long message meet here, under the key (source,
//! destination, reference, total). When the last part is in, one [`ReplyRecord`] with the next
//! reply id is stored. The assembly record stays behind (parts dropped, their carrier ids kept)
//! until the leader closes it: a carrier that resends a part whose acknowledgement it missed is
//! then recognised and makes no second reply. A single message with a carrier id leaves the same
//! kind of guard. A long message still missing parts when the leader closes its assembly (after
//! the policy's `replies.incomplete-after-ms`) becomes a reply marked incomplete, with what came.
//!
//! Routing, at the moment the reply is made: the reply rule the receiving node found in the
//! policy (carried by the event), else the client that most recently sent a message to the
//! subscriber (an index written on submission), else nobody — unrouted, visible to
//! administrators.
//!
//! Storage is bounded per key: at most [`MAX_PARTS`] parts of at most [`MAX_PART_TEXT`] bytes.

use prost::Message as _;

use crate::db::{CF_CLIENT_REPLIES, CF_LAST_SENDER, CF_MO_AGE, CF_MO_ASSEMBLY, CF_REPLIES};
use crate::events::{Event, MessageSubmitted, MoAssemblyClosed, MoReceived};
use crate::keys;
use crate::projection::{decode, ignored, load_counter, store_counter, Kv, ProjectionError};
use crate::records::{MoAssemblyRecord, MoPartRecord, ReplyRecord};
use crate::types::EventOutcome;

/// Parts of one long message: UDH and sar_* count them in 8 bits.
pub const MAX_PARTS: u32 = 255;
/// The most text kept of one part, in bytes (cut at a character boundary). A part is at most
/// 140 octets on the Chinese protocols, but SMPP's message_payload may carry 64 KiB.
pub const MAX_PART_TEXT: usize = 2048;

/// Remembers that `s.client_id` is the latest client to write to each recipient: one small key
/// per recipient, in the submission's own write batch.
pub fn record_last_sender(kv: &mut impl Kv, s: &MessageSubmitted) {
    for recipient in &s.recipients {
        kv.put(
            CF_LAST_SENDER,
            keys::subscriber(recipient),
            s.client_id.as_bytes().to_vec(),
        );
    }
}

pub fn load_reply(kv: &impl Kv, id: u64) -> Result<Option<ReplyRecord>, ProjectionError> {
    kv.get(CF_REPLIES, &keys::reply(id))?
        .map(|bytes| decode(&format!("reply {id}"), &bytes))
        .transpose()
}

fn load_assembly(kv: &impl Kv, key: &[u8]) -> Result<Option<MoAssemblyRecord>, ProjectionError> {
    kv.get(CF_MO_ASSEMBLY, key)?
        .map(|bytes| decode("MO assembly", &bytes))
        .transpose()
}

/// A usable concatenation header: (reference, total, number) of a message of 2 or more parts.
enum Shape {
    Whole {
        complete: bool,
    },
    Part {
        reference: u32,
        total: u32,
        number: u32,
    },
}

fn shape(mo: &MoReceived) -> Shape {
    let Some(c) = &mo.concat else {
        return Shape::Whole { complete: true };
    };
    let usable = (1..=MAX_PARTS).contains(&c.total)
        && (1..=c.total).contains(&c.number)
        && c.reference <= u32::from(u16::MAX);
    match (usable, c.total) {
        (false, _) => Shape::Whole { complete: false },
        (true, 1) => Shape::Whole { complete: true },
        (true, total) => Shape::Part {
            reference: c.reference,
            total,
            number: c.number,
        },
    }
}

fn capped(text: &str) -> String {
    if text.len() <= MAX_PART_TEXT {
        return text.to_string();
    }
    let mut end = MAX_PART_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn part_record(event: &Event, mo: &MoReceived, number: u32) -> MoPartRecord {
    MoPartRecord {
        number,
        text: capped(&mo.text),
        encoding: mo.encoding.clone(),
        carrier_id: mo.carrier_id.clone(),
        link: mo.link.clone(),
        slot: mo.slot.clone(),
        node: mo.node,
        at_ms: event.at_ms,
        carrier_time: mo.carrier_time.clone(),
    }
}

/// Applies a `MoReceived`: a whole message becomes a reply at once; a part joins its message's
/// assembly, and the last missing part makes the reply. A resent copy changes nothing.
pub fn received(
    kv: &mut impl Kv,
    event: &Event,
    mo: &MoReceived,
) -> Result<EventOutcome, ProjectionError> {
    let (reference, total, number) = match shape(mo) {
        Shape::Whole { complete } => return whole(kv, event, mo, complete),
        Shape::Part {
            reference,
            total,
            number,
        } => (reference, total, number),
    };
    let key = keys::mo_concat(&mo.src, &mo.dest, reference, total);
    let mut assembly = match load_assembly(kv, &key)? {
        Some(done) if done.reply_id != 0 => {
            // Without carrier ids nothing tells a resend from a new message reusing the
            // reference while the guard lasts: take it for a resend (the likelier case).
            if mo.carrier_id.is_empty() || done.carrier_ids.contains(&mo.carrier_id) {
                return Ok(ignored(format!(
                    "part {number} of {total} repeats reply {}",
                    done.reply_id
                )));
            }
            // The subscriber's handset reused the reference for a new message.
            kv.delete(CF_MO_AGE, keys::mo_age(done.since_ms, &key));
            None
        }
        other => other,
    }
    .unwrap_or_else(|| {
        kv.put(CF_MO_AGE, keys::mo_age(event.at_ms, &key), Vec::new());
        MoAssemblyRecord {
            since_ms: event.at_ms,
            src: mo.src.clone(),
            dest: mo.dest.clone(),
            reference,
            total,
            ..Default::default()
        }
    });
    if assembly.parts.iter().any(|p| p.number == number) {
        return Ok(ignored(format!(
            "part {number} of {total} (reference {reference}) is already held"
        )));
    }
    assembly.parts.push(part_record(event, mo, number));
    if !mo.rule_client.is_empty() {
        assembly.rule_client.clone_from(&mo.rule_client);
    }
    if let Some(c) = &mo.concat {
        assembly.scheme.clone_from(&c.scheme);
    }
    if assembly.parts.len() as u32 == total {
        let parts = std::mem::take(&mut assembly.parts);
        assembly.carrier_ids = parts
            .iter()
            .filter(|p| !p.carrier_id.is_empty())
            .map(|p| p.carrier_id.clone())
            .collect();
        let reply = Reply {
            src: &mo.src,
            dest: &mo.dest,
            total,
            complete: true,
            rule_client: &assembly.rule_client,
            scheme: &assembly.scheme,
        };
        assembly.reply_id = reply.make(kv, event.at_ms, parts)?;
        // The guard against resends lasts from now, not from the first part.
        kv.delete(CF_MO_AGE, keys::mo_age(assembly.since_ms, &key));
        assembly.since_ms = event.at_ms;
        kv.put(CF_MO_AGE, keys::mo_age(event.at_ms, &key), Vec::new());
    }
    kv.put(CF_MO_ASSEMBLY, key, assembly.encode_to_vec());
    Ok(EventOutcome::Applied)
}

/// A message that came whole (or whose concatenation header is unusable: `complete` false).
fn whole(
    kv: &mut impl Kv,
    event: &Event,
    mo: &MoReceived,
    complete: bool,
) -> Result<EventOutcome, ProjectionError> {
    let guard =
        (!mo.carrier_id.is_empty()).then(|| keys::mo_single(&mo.src, &mo.dest, &mo.carrier_id));
    if let Some(key) = &guard {
        if let Some(done) = load_assembly(kv, key)? {
            return Ok(ignored(format!(
                "carrier id {} repeats reply {}",
                mo.carrier_id, done.reply_id
            )));
        }
    }
    let scheme = mo.concat.as_ref().map(|c| c.scheme.as_str()).unwrap_or("");
    let reply = Reply {
        src: &mo.src,
        dest: &mo.dest,
        total: 1,
        complete,
        rule_client: &mo.rule_client,
        scheme,
    };
    let reply_id = reply.make(kv, event.at_ms, vec![part_record(event, mo, 1)])?;
    if let Some(key) = guard {
        kv.put(CF_MO_AGE, keys::mo_age(event.at_ms, &key), Vec::new());
        let record = MoAssemblyRecord {
            since_ms: event.at_ms,
            reply_id,
            carrier_ids: vec![mo.carrier_id.clone()],
            src: mo.src.clone(),
            dest: mo.dest.clone(),
            ..Default::default()
        };
        kv.put(CF_MO_ASSEMBLY, key, record.encode_to_vec());
    }
    Ok(EventOutcome::Applied)
}

/// Applies a `MoAssemblyClosed`: a message still missing parts becomes an incomplete reply; the
/// guard of a finished one is forgotten.
pub fn closed(
    kv: &mut impl Kv,
    event: &Event,
    c: &MoAssemblyClosed,
) -> Result<EventOutcome, ProjectionError> {
    let key = if c.total >= 2 {
        keys::mo_concat(&c.src, &c.dest, c.reference, c.total)
    } else {
        keys::mo_single(&c.src, &c.dest, &c.carrier_id)
    };
    let Some(assembly) = load_assembly(kv, &key)? else {
        return Ok(ignored("no such MO assembly (closed already)"));
    };
    if assembly.since_ms != c.since_ms {
        return Ok(ignored("the MO assembly changed since it was found old"));
    }
    kv.delete(CF_MO_AGE, keys::mo_age(assembly.since_ms, &key));
    kv.delete(CF_MO_ASSEMBLY, key);
    if assembly.reply_id == 0 {
        let reply = Reply {
            src: &c.src,
            dest: &c.dest,
            total: c.total,
            complete: false,
            rule_client: &assembly.rule_client,
            scheme: &assembly.scheme,
        };
        reply.make(kv, event.at_ms, assembly.parts)?;
    }
    Ok(EventOutcome::Applied)
}

/// What a new reply is made of besides its parts.
struct Reply<'a> {
    src: &'a str,
    dest: &'a str,
    total: u32,
    complete: bool,
    rule_client: &'a str,
    scheme: &'a str,
}

impl Reply<'_> {
    /// Stores the reply with the next id, routed, and indexes it under its client; `at_ms` is
    /// the time of the event that completes it.
    fn make(
        &self,
        kv: &mut impl Kv,
        at_ms: u64,
        mut parts: Vec<MoPartRecord>,
    ) -> Result<u64, ProjectionError> {
        parts.sort_by_key(|p| p.number);
        let (client_id, routed_by) = self.route(kv)?;
        kv.note(crate::observe::ApplyNote::Reply {
            routed: !client_id.is_empty(),
        });
        let id = load_counter(kv, keys::META_NEXT_REPLY_ID, "next reply id")?.unwrap_or(1);
        store_counter(kv, keys::META_NEXT_REPLY_ID.to_vec(), id + 1);
        let first = parts.iter().map(|p| p.at_ms).min().unwrap_or(at_ms);
        let record = ReplyRecord {
            id,
            client_id,
            routed_by: routed_by.to_string(),
            src: self.src.to_string(),
            dest: self.dest.to_string(),
            text: parts.iter().map(|p| p.text.as_str()).collect(),
            total: self.total,
            complete: self.complete,
            parts,
            received_at_ms: first,
            completed_at_ms: at_ms,
            scheme: self.scheme.to_string(),
        };
        kv.put(
            CF_CLIENT_REPLIES,
            keys::client_reply(&record.client_id, id),
            Vec::new(),
        );
        kv.put(CF_REPLIES, keys::reply(id), record.encode_to_vec());
        Ok(id)
    }

    fn route(&self, kv: &impl Kv) -> Result<(String, &'static str), ProjectionError> {
        if !self.rule_client.is_empty() {
            return Ok((self.rule_client.to_string(), "rule"));
        }
        let last = kv.get(CF_LAST_SENDER, &keys::subscriber(self.src))?;
        Ok(match last {
            Some(client) => (String::from_utf8_lossy(&client).into_owned(), "last-sender"),
            None => (String::new(), ""),
        })
    }
}
