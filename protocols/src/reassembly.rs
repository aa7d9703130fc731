//! Reassembly of concatenated mobile-originated (MO) messages: the parts of a long message a
//! subscriber sent arrive as separate delivers, and the application wants one [`MoMessage`].
//!
//! Every client hands each received part to a [`Reassembler`] (through the shared handle
//! [`MoAssembly`], so parts arriving on different connections of one link still meet). Parts are
//! keyed by (source, destination, reference, total), from an 8-bit or 16-bit concatenation UDH or,
//! in SMPP, the sar_* TLVs. Once every part is in, their bytes are joined in part order and
//! decoded with the part's data coding (runs of equal coding are decoded together, so a character
//! split across two parts by a foreign sender is still read whole), and one message comes out.
//!
//! Memory is bounded ([`Limits`]): at most `max_pending` messages wait for parts, each for at
//! most `max_age`. A message that runs out of time or room is **emitted with what it has**,
//! marked `complete: false` with the parts joined in order: every part was acknowledged to the
//! carrier already, so dropping it would lose the subscriber's text for good, while the marker
//! lets the application tell a fragment from a whole message. Parts with an impossible header
//! (total 0, number 0 or above total) are refused by [`Reassembler::push`]; [`MoAssembly`] then
//! passes the part on by itself, also marked incomplete. A second copy of a part already held
//! (a carrier resending a part whose acknowledgement it missed) is dropped.
//!
//! What this module does not do: it does not persist pending parts (a node restart loses them;
//! the carrier does not resend acknowledged parts), and it does not deduplicate whole messages a
//! carrier delivers twice — MO delivery is at least once, as for single-part messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{ClientEvent, MoMessage};
use crate::text::Concat;

/// Decodes the content bytes of one data coding into text (never fails).
pub type Decode = fn(u8, &[u8]) -> String;

/// How much a [`Reassembler`] may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages waiting for parts; a new message beyond this pushes the oldest out.
    pub max_pending: usize,
    /// How long a message may wait for its missing parts, from its first part's arrival.
    pub max_age: Duration,
}

impl Default for Limits {
    /// 512 messages (at most 255 parts of 140 octets each: a worst case near 18 MB) for five
    /// minutes; handsets send all parts of a message within seconds.
    fn default() -> Self {
        Limits {
            max_pending: 512,
            max_age: Duration::from_secs(300),
        }
    }
}

/// One received part (or a whole single-part message) as the client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoPart {
    pub src: String,
    pub dest: String,
    /// The deliver's id as the protocol names it (may be empty).
    pub carrier_id: String,
    pub data_coding: u8,
    /// The content without any UDH.
    pub body: Vec<u8>,
    /// `None` for a message that came whole.
    pub concat: Option<Concat>,
}

impl MoPart {
    /// A part from received content: with `udhi` set, its UDH is stripped and read for a
    /// concatenation header (a UDH without one leaves a single message).
    pub fn from_payload(
        src: String,
        dest: String,
        carrier_id: String,
        data_coding: u8,
        udhi: bool,
        payload: &[u8],
    ) -> MoPart {
        let (concat, body) = if udhi {
            crate::text::strip_udh(payload)
        } else {
            (None, payload)
        };
        MoPart {
            src,
            dest,
            carrier_id,
            data_coding,
            body: body.to_vec(),
            concat,
        }
    }
}

/// Why a part was not taken.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    #[error("concatenated part with total 0")]
    ZeroTotal,
    #[error("part number {number} outside 1..={total}")]
    NumberOutOfRange { number: u8, total: u8 },
    #[error("part {number} of {total} (reference {reference}) is already held")]
    Duplicate {
        reference: u16,
        number: u8,
        total: u8,
    },
}

/// Why a concatenation header cannot be used, if it cannot.
fn header_error(concat: Concat) -> Option<Reject> {
    let Concat { total, number, .. } = concat;
    if total == 0 {
        Some(Reject::ZeroTotal)
    } else if number == 0 || number > total {
        Some(Reject::NumberOutOfRange { number, total })
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    src: String,
    dest: String,
    reference: u16,
    total: u8,
}

struct Pending {
    first_seen: Instant,
    /// Indexed by part number − 1.
    parts: Vec<Option<Stored>>,
    held: usize,
}

struct Stored {
    carrier_id: String,
    data_coding: u8,
    body: Vec<u8>,
}

/// Collects the parts of concatenated MO messages (see the module docs). Not thread-safe by
/// itself: clients share one through [`MoAssembly`].
pub struct Reassembler {
    decode: Decode,
    limits: Limits,
    pending: HashMap<Key, Pending>,
    /// Messages pushed out for lack of room, waiting for [`Reassembler::take_expired`].
    evicted: Vec<MoMessage>,
}

impl Reassembler {
    pub fn new(decode: Decode, limits: Limits) -> Reassembler {
        Reassembler {
            decode,
            limits,
            pending: HashMap::new(),
            evicted: Vec::new(),
        }
    }

    /// Messages waiting for parts.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes one part. `Ok(Some)` is a whole message (the part was a single message or the last
    /// missing one), `Ok(None)` a part now held. When the part starts a new message and
    /// `max_pending` are already waiting, the oldest is pushed out (see
    /// [`Reassembler::take_expired`]).
    pub fn push(&mut self, part: MoPart, now: Instant) -> Result<Option<MoMessage>, Reject> {
        let Some(concat) = part.concat else {
            return Ok(Some(self.single(part)));
        };
        if let Some(e) = header_error(concat) {
            return Err(e);
        }
        let Concat {
            reference,
            total,
            number,
        } = concat;
        if total == 1 {
            return Ok(Some(self.single(part)));
        }
        let key = Key {
            src: part.src,
            dest: part.dest,
            reference,
            total,
        };
        if !self.pending.contains_key(&key) && self.pending.len() >= self.limits.max_pending {
            self.evict_oldest();
        }
        let entry = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            first_seen: now,
            parts: (0..total).map(|_| None).collect(),
            held: 0,
        });
        let slot = &mut entry.parts[usize::from(number - 1)];
        if slot.is_some() {
            return Err(Reject::Duplicate {
                reference,
                number,
                total,
            });
        }
        *slot = Some(Stored {
            carrier_id: part.carrier_id,
            data_coding: part.data_coding,
            body: part.body,
        });
        entry.held += 1;
        if entry.held < usize::from(total) {
            return Ok(None);
        }
        Ok(self
            .pending
            .remove(&key)
            .map(|entry| self.assemble(key, entry)))
    }

    /// Messages that waited longer than `max_age`, and those pushed out for room, each with the
    /// parts it has (`complete: false`), oldest first.
    pub fn take_expired(&mut self, now: Instant) -> Vec<MoMessage> {
        let max_age = self.limits.max_age;
        let mut expired: Vec<(Key, Pending)> = Vec::new();
        self.pending.retain(|key, entry| {
            if now.saturating_duration_since(entry.first_seen) < max_age {
                return true;
            }
            expired.push((
                key.clone(),
                Pending {
                    first_seen: entry.first_seen,
                    parts: std::mem::take(&mut entry.parts),
                    held: entry.held,
                },
            ));
            false
        });
        expired.sort_by_key(|(_, entry)| entry.first_seen);
        let mut out = std::mem::take(&mut self.evicted);
        for (key, entry) in expired {
            tracing::warn!(
                src = %key.src,
                reference = key.reference,
                held = entry.held,
                total = key.total,
                "MO message still missing parts after {max_age:?}: passed on incomplete"
            );
            out.push(self.assemble(key, entry));
        }
        out
    }

    fn evict_oldest(&mut self) {
        let Some(oldest) = self
            .pending
            .iter()
            .min_by_key(|(_, entry)| entry.first_seen)
            .map(|(key, _)| key.clone())
        else {
            return;
        };
        if let Some(entry) = self.pending.remove(&oldest) {
            tracing::warn!(
                src = %oldest.src,
                reference = oldest.reference,
                held = entry.held,
                total = oldest.total,
                max_pending = self.limits.max_pending,
                "too many MO messages waiting for parts: the oldest is passed on incomplete"
            );
            let message = self.assemble(oldest, entry);
            self.evicted.push(message);
        }
    }

    fn single(&self, part: MoPart) -> MoMessage {
        MoMessage {
            text: (self.decode)(part.data_coding, &part.body),
            src: part.src,
            dest: part.dest,
            carrier_id: part.carrier_id,
            parts: 1,
            complete: true,
        }
    }

    /// Joins the held parts in order. Adjacent parts of one coding are decoded as one run of
    /// bytes; a gap (a missing part) or a change of coding starts a new run.
    fn assemble(&self, key: Key, entry: Pending) -> MoMessage {
        let total = entry.parts.len();
        let mut text = String::new();
        let mut carrier_id = None;
        let mut run: Option<(u8, Vec<u8>)> = None;
        for slot in entry.parts {
            match slot {
                Some(part) => {
                    carrier_id.get_or_insert(part.carrier_id);
                    match &mut run {
                        Some((coding, bytes)) if *coding == part.data_coding => {
                            bytes.extend_from_slice(&part.body)
                        }
                        _ => {
                            if let Some((coding, bytes)) = run.take() {
                                text.push_str(&(self.decode)(coding, &bytes));
                            }
                            run = Some((part.data_coding, part.body));
                        }
                    }
                }
                None => {
                    if let Some((coding, bytes)) = run.take() {
                        text.push_str(&(self.decode)(coding, &bytes));
                    }
                }
            }
        }
        if let Some((coding, bytes)) = run {
            text.push_str(&(self.decode)(coding, &bytes));
        }
        MoMessage {
            src: key.src,
            dest: key.dest,
            text,
            carrier_id: carrier_id.unwrap_or_default(),
            parts: entry.held as u32,
            complete: entry.held == total,
        }
    }
}

/// A [`Reassembler`] shared by the connections of one link, with the policy for refused parts.
/// Cloning shares it.
#[derive(Clone)]
pub struct MoAssembly {
    inner: Arc<Mutex<Reassembler>>,
    link: Arc<str>,
}

/// How often [`MoAssembly::spawn_flusher`] looks for messages that ran out of time.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

impl MoAssembly {
    pub fn new(link: &str, decode: Decode, limits: Limits) -> MoAssembly {
        MoAssembly {
            inner: Arc::new(Mutex::new(Reassembler::new(decode, limits))),
            link: link.into(),
        }
    }

    /// Takes one part; returns the message it completes, if any. A duplicate is dropped (its
    /// first copy is held); a part with an impossible header is passed on alone, marked
    /// incomplete, because its text is all there is of it.
    pub fn accept(&self, part: MoPart) -> Option<MoMessage> {
        // A panic elsewhere while holding the lock leaves consistent state behind (every
        // mutation is a single insert or remove), so carry on rather than lose parts.
        let mut r = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = part.concat.and_then(header_error) {
            tracing::warn!(link = %self.link, src = %part.src, "MO part with a bad concatenation header passed on alone: {e}");
            return Some(MoMessage {
                text: (r.decode)(part.data_coding, &part.body),
                src: part.src,
                dest: part.dest,
                carrier_id: part.carrier_id,
                parts: 1,
                complete: false,
            });
        }
        match r.push(part, Instant::now()) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(link = %self.link, "MO part dropped: {e}");
                None
            }
        }
    }

    /// Messages that ran out of time or room (see [`Reassembler::take_expired`]).
    pub fn take_expired(&self) -> Vec<MoMessage> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take_expired(Instant::now())
    }

    /// Sends messages that ran out of time or room into `events` every `every`. The task holds
    /// only a weak sender, so it neither keeps the channel open nor outlives the link: it ends
    /// once every other sender is gone or the receiver is closed.
    pub fn spawn_flusher(&self, events: &mpsc::Sender<ClientEvent>, every: Duration) {
        let weak = events.downgrade();
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.reset();
            loop {
                tick.tick().await;
                let Some(events) = weak.upgrade() else {
                    return;
                };
                if events.is_closed() {
                    return;
                }
                for message in this.take_expired() {
                    if events.send(ClientEvent::Mo(message)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// Starts a session engine for a client whose MO parts go through `mo`: the engine and the
/// flusher of `mo` feed one event queue.
pub(crate) fn start_engine<P>(
    settings: crate::session::EngineSettings,
    link: P,
    mo: &MoAssembly,
) -> (crate::session::Engine<P>, mpsc::Receiver<ClientEvent>)
where
    P: crate::session::LinkProtocol<Event = ClientEvent>,
{
    let (events_tx, events) = mpsc::channel(crate::client::EVENT_QUEUE);
    let engine = crate::session::Engine::start_with_events(settings, link, events_tx.clone());
    mo.spawn_flusher(&events_tx, FLUSH_EVERY);
    (engine, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{decode_text, split_text, split_text_140, Segment};
    use proptest::prelude::*;

    fn reassembler(max_pending: usize, max_age_secs: u64) -> Reassembler {
        Reassembler::new(
            decode_text,
            Limits {
                max_pending,
                max_age: Duration::from_secs(max_age_secs),
            },
        )
    }

    fn part(src: &str, reference: u16, total: u8, number: u8, body: &[u8]) -> MoPart {
        MoPart {
            src: src.into(),
            dest: "10690001".into(),
            carrier_id: format!("id{number}"),
            data_coding: 0,
            body: body.to_vec(),
            concat: Some(Concat {
                reference,
                total,
                number,
            }),
        }
    }

    /// The part a client would read from a segment the crate's splitter made.
    fn received(segment: &Segment, src: &str) -> MoPart {
        MoPart::from_payload(
            src.into(),
            "10690001".into(),
            format!("id{}", segment.number),
            segment.data_coding,
            segment.udhi,
            &segment.payload,
        )
    }

    #[test]
    fn a_single_message_comes_out_at_once() {
        let mut r = reassembler(4, 300);
        let mut p = part("1", 0, 1, 1, b"TD");
        p.concat = None;
        let m = r.push(p, Instant::now()).expect("taken").expect("whole");
        assert_eq!(
            (m.text.as_str(), m.parts, m.complete, m.carrier_id.as_str()),
            ("TD", 1, true, "id1")
        );
        // A header saying "1 of 1" is a single message too.
        let m = r.push(part("1", 5, 1, 1, b"hi"), Instant::now());
        assert!(matches!(m, Ok(Some(ref m)) if m.text == "hi" && m.complete));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn parts_in_any_order_make_one_message() {
        let mut r = reassembler(4, 300);
        let now = Instant::now();
        assert_eq!(r.push(part("1", 7, 3, 3, b"c"), now), Ok(None));
        assert_eq!(r.push(part("1", 7, 3, 1, b"a"), now), Ok(None));
        // Another sender's part with the same reference does not mix in.
        assert_eq!(r.push(part("2", 7, 3, 2, b"X"), now), Ok(None));
        let m = r.push(part("1", 7, 3, 2, b"b"), now).expect("taken");
        let m = m.expect("whole");
        assert_eq!(
            (m.text.as_str(), m.parts, m.complete, m.carrier_id.as_str()),
            ("abc", 3, true, "id1")
        );
        assert_eq!(r.pending(), 1, "sender 2's message still waits");
    }

    #[test]
    fn the_same_reference_with_another_total_is_another_message() {
        let mut r = reassembler(4, 300);
        let now = Instant::now();
        assert_eq!(r.push(part("1", 7, 2, 1, b"a"), now), Ok(None));
        assert_eq!(r.push(part("1", 7, 3, 1, b"x"), now), Ok(None));
        assert_eq!(r.pending(), 2);
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        let mut r = reassembler(4, 300);
        let now = Instant::now();
        assert_eq!(
            r.push(part("1", 1, 0, 0, b"a"), now),
            Err(Reject::ZeroTotal)
        );
        assert_eq!(
            r.push(part("1", 1, 2, 3, b"a"), now),
            Err(Reject::NumberOutOfRange {
                number: 3,
                total: 2
            })
        );
        assert_eq!(
            r.push(part("1", 1, 2, 0, b"a"), now),
            Err(Reject::NumberOutOfRange {
                number: 0,
                total: 2
            })
        );
        assert_eq!(r.push(part("1", 1, 2, 1, b"a"), now), Ok(None));
        assert_eq!(
            r.push(part("1", 1, 2, 1, b"A"), now),
            Err(Reject::Duplicate {
                reference: 1,
                number: 1,
                total: 2
            })
        );
        // The first copy is kept.
        let m = r.push(part("1", 1, 2, 2, b"b"), now).expect("taken");
        assert_eq!(m.map(|m| m.text), Some("ab".to_string()));
    }

    #[test]
    fn a_message_missing_parts_expires_with_what_it_has() {
        let mut r = reassembler(4, 300);
        let t0 = Instant::now();
        assert_eq!(r.push(part("1", 9, 4, 1, b"a"), t0), Ok(None));
        assert_eq!(r.push(part("1", 9, 4, 3, b"c"), t0), Ok(None));
        let later = t0 + Duration::from_secs(100);
        assert_eq!(r.push(part("2", 1, 2, 1, b"x"), later), Ok(None));
        assert!(r.take_expired(t0 + Duration::from_secs(299)).is_empty());
        let out = r.take_expired(t0 + Duration::from_secs(300));
        assert_eq!(out.len(), 1);
        let m = &out[0];
        assert_eq!(
            (m.src.as_str(), m.text.as_str(), m.parts, m.complete),
            ("1", "ac", 2, false)
        );
        assert_eq!(r.pending(), 1);
        // A straggler after expiry starts over rather than joining a message already passed on.
        assert_eq!(
            r.push(part("1", 9, 4, 2, b"b"), t0 + Duration::from_secs(301)),
            Ok(None)
        );
    }

    #[test]
    fn room_runs_out_and_the_oldest_is_pushed_out() {
        let mut r = reassembler(2, 300);
        let t0 = Instant::now();
        assert_eq!(r.push(part("1", 1, 2, 2, b"b"), t0), Ok(None));
        assert_eq!(
            r.push(part("2", 1, 2, 1, b"x"), t0 + Duration::from_secs(1)),
            Ok(None)
        );
        // A part of a waiting message needs no room.
        assert_eq!(
            r.push(part("2", 1, 2, 1, b"x"), t0 + Duration::from_secs(2)),
            Err(Reject::Duplicate {
                reference: 1,
                number: 1,
                total: 2
            })
        );
        assert_eq!(
            r.push(part("3", 1, 2, 1, b"y"), t0 + Duration::from_secs(2)),
            Ok(None)
        );
        assert_eq!(r.pending(), 2);
        let out = r.take_expired(t0 + Duration::from_secs(3));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].src.as_str(), out[0].text.as_str(), out[0].complete),
            ("1", "b", false)
        );
        assert!(r.take_expired(t0 + Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn a_surrogate_pair_split_across_parts_is_decoded_whole() {
        // A foreign sender cut 😀 (D83D DE00) between two UCS2 parts.
        let mut r = reassembler(4, 300);
        let now = Instant::now();
        let mut a = part("1", 3, 2, 1, &[0x4F, 0x60, 0xD8, 0x3D]);
        let mut b = part("1", 3, 2, 2, &[0xDE, 0x00]);
        a.data_coding = 8;
        b.data_coding = 8;
        assert_eq!(r.push(b, now), Ok(None));
        let m = r.push(a, now).expect("taken").expect("whole");
        assert_eq!(m.text, "你😀");
    }

    #[test]
    fn parts_of_different_codings_are_decoded_each_their_way() {
        let mut r = reassembler(4, 300);
        let now = Instant::now();
        let a = part("1", 3, 2, 1, b"OK ");
        let mut b = part("1", 3, 2, 2, &[0x4F, 0x60]);
        b.data_coding = 8;
        assert_eq!(r.push(a, now), Ok(None));
        let m = r.push(b, now).expect("taken").expect("whole");
        assert_eq!(m.text, "OK 你");
    }

    #[test]
    fn accept_passes_a_bad_header_on_alone_and_drops_duplicates() {
        let assembly = MoAssembly::new("t", decode_text, Limits::default());
        let bad = assembly.accept(part("1", 1, 2, 5, b"lost"));
        assert!(matches!(bad, Some(ref m) if m.text == "lost" && !m.complete && m.parts == 1));
        assert_eq!(assembly.accept(part("1", 2, 2, 1, b"a")), None);
        assert_eq!(assembly.accept(part("1", 2, 2, 1, b"a")), None);
        let m = assembly.accept(part("1", 2, 2, 2, b"b")).expect("whole");
        assert_eq!((m.text.as_str(), m.complete, m.parts), ("ab", true, 2));
    }

    #[tokio::test]
    async fn the_flusher_sends_expired_messages_and_ends_with_the_link() {
        let assembly = MoAssembly::new(
            "t",
            decode_text,
            Limits {
                max_pending: 8,
                max_age: Duration::from_millis(300),
            },
        );
        let (tx, mut rx) = mpsc::channel(8);
        assembly.spawn_flusher(&tx, Duration::from_millis(20));
        let started = Instant::now();
        assert_eq!(assembly.accept(part("1", 4, 2, 1, b"half")), None);
        let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("flushed in time");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "not before max_age"
        );
        assert!(matches!(event, Some(ClientEvent::Mo(ref m)) if m.text == "half" && !m.complete));
        // The flusher holds no sender of its own: dropping the link's closes the stream.
        drop(tx);
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
    }

    fn shuffled(parts: Vec<MoPart>, keys: &[u32]) -> Vec<MoPart> {
        let mut keyed: Vec<(u32, MoPart)> = keys.iter().copied().zip(parts).collect();
        keyed.sort_by_key(|(k, _)| *k);
        keyed.into_iter().map(|(_, p)| p).collect()
    }

    fn reassemble_all(parts: Vec<MoPart>, decode: Decode) -> Vec<MoMessage> {
        let mut r = Reassembler::new(decode, Limits::default());
        let now = Instant::now();
        let out: Vec<MoMessage> = parts
            .into_iter()
            .filter_map(|p| r.push(p, now).expect("consistent parts"))
            .collect();
        assert_eq!(r.pending(), 0);
        out
    }

    proptest! {
        #[test]
        fn split_shuffle_reassemble_gives_the_text_back(
            text in "\\PC{0,700}",
            keys in prop::collection::vec(any::<u32>(), 255),
            splitter in 0..3u8,
        ) {
            let (segments, decode): (Vec<Segment>, Decode) = match splitter {
                0 => (split_text(&text), decode_text),
                1 => (split_text_140(&text), decode_text),
                _ => (crate::gsm7::split_smpp(&text), crate::gsm7::decode_smpp_text),
            };
            let total = segments.len();
            let parts = segments.iter().map(|s| received(s, "13800138000")).collect();
            let out = reassemble_all(shuffled(parts, &keys), decode);
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(&out[0].text, &text);
            prop_assert_eq!(out[0].parts as usize, total);
            prop_assert!(out[0].complete);
        }

        #[test]
        fn two_senders_interleaved_each_get_their_own_text(
            a in "[a-z ]{200,600}",
            b in "\\PC{80,300}",
            keys in prop::collection::vec(any::<u32>(), 255),
        ) {
            let mut parts: Vec<MoPart> =
                split_text(&a).iter().map(|s| received(s, "13800000001")).collect();
            parts.extend(split_text(&b).iter().map(|s| received(s, "13800000002")));
            let keys: Vec<u32> = keys.into_iter().cycle().take(parts.len()).collect();
            let out = reassemble_all(shuffled(parts, &keys), decode_text);
            let by_src = |src: &str| out.iter().find(|m| m.src == src).map(|m| m.text.clone());
            prop_assert_eq!(by_src("13800000001"), Some(a));
            prop_assert_eq!(by_src("13800000002"), Some(b));
        }

        #[test]
        fn arbitrary_headers_never_panic(
            headers in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..200),
        ) {
            let mut r = reassembler(16, 300);
            let now = Instant::now();
            for (reference, total, number) in headers {
                let _ = r.push(part("1", u16::from(reference % 4), total % 6, number % 7, b"x"), now);
            }
            prop_assert!(r.pending() <= 16);
            let _ = r.take_expired(now + Duration::from_secs(301));
            prop_assert_eq!(r.pending(), 0);
        }
    }
}
