//! Messages carried as several copies: urgent messages sent through several links at once (a
//! fan-out group), and messages whose recipients take different routes (a split group).
//!
//! The message the client submitted becomes a *group*: it is never queued or sent itself. Each
//! link of a fan-out (or each route of a split) gets a *copy* — an ordinary message with its own
//! queue entry, attempts, segments and delivery reports — so everything that sends, retries and
//! expires messages works on copies unchanged. The group's state is derived from its copies
//! whenever one of them changes. Fan-out: the first copy reported delivered wins (the group is
//! DELIVERED), copies still waiting are withdrawn, and a copy delivered after the win is recorded
//! as a duplicate; the group fails only when every copy has failed. Split: the group is as far as
//! its least advanced copy, and delivered only when every copy is.

use crate::events::{Event, MessageSubmitted};
use crate::projection::{
    load_message, next_id, remember, save_record, start_waiting, unqueue, Kv, ProjectionError,
};
use crate::records::{MessageRecord, MessageState};
use crate::types::EventOutcome;

/// Creates the copies of `group` (one per link of `s.fan_out_links`) and stores the group.
pub(crate) fn create_group(
    kv: &mut impl Kv,
    mut group: MessageRecord,
    s: &MessageSubmitted,
    event: &Event,
) -> Result<(), ProjectionError> {
    for (i, link) in s.fan_out_links.iter().enumerate() {
        // The first copy waits in the route's queue and fails over like any routed message;
        // each other copy is pinned to its own link, so the copies really travel apart.
        let route = if i == 0 {
            group.route.clone()
        } else {
            String::new()
        };
        let recipients = group.recipients.clone();
        add_copy(kv, &mut group, recipients, route, link.clone(), s, event)?;
    }
    store_group(kv, group, s, event)
}

/// Creates one copy per route of `s.split`, each with its own recipients, and stores the group.
pub(crate) fn create_split_group(
    kv: &mut impl Kv,
    mut group: MessageRecord,
    s: &MessageSubmitted,
    event: &Event,
) -> Result<(), ProjectionError> {
    for part in &s.split {
        let (recipients, route) = (part.recipients.clone(), part.route.clone());
        add_copy(
            kv,
            &mut group,
            recipients,
            route,
            part.link.clone(),
            s,
            event,
        )?;
    }
    group.split = true;
    group.route.clear();
    store_group(kv, group, s, event)
}

/// A new copy of `group` to `recipients` through `route` (or `link` alone), waiting like any
/// new message.
fn add_copy(
    kv: &mut impl Kv,
    group: &mut MessageRecord,
    recipients: Vec<String>,
    route: String,
    link: String,
    s: &MessageSubmitted,
    event: &Event,
) -> Result<(), ProjectionError> {
    let mut copy = MessageRecord {
        id: next_id(kv)?,
        copy_of: group.id,
        client_id: group.client_id.clone(),
        client_ref: group.client_ref.clone(),
        recipients,
        text: group.text.clone(),
        priority: group.priority,
        route,
        link,
        submitted_at_ms: group.submitted_at_ms,
        expires_at_ms: group.expires_at_ms,
        timeline: vec![crate::projection::submission_for_timeline(event)],
        ..Default::default()
    };
    start_waiting(kv, &mut copy, s, event)?;
    save_record(kv, &copy, MessageState::Accepted)?;
    group.copies.push(copy.id);
    Ok(())
}

/// Stores a new group, waiting (or scheduled) like its copies.
fn store_group(
    kv: &mut impl Kv,
    mut group: MessageRecord,
    s: &MessageSubmitted,
    event: &Event,
) -> Result<(), ProjectionError> {
    if s.send_at_ms > event.at_ms {
        group.state = MessageState::Scheduled as u32;
        group.not_before_ms = s.send_at_ms;
    } else {
        group.state = MessageState::Accepted as u32;
    }
    save_record(kv, &group, MessageState::Accepted)
}

/// Re-derives the group's state after one of its copies changed (by `event`).
pub(crate) fn settle_group(
    kv: &mut impl Kv,
    group_id: u64,
    event: &Event,
) -> Result<(), ProjectionError> {
    let Some(mut group) = load_message(kv, group_id)? else {
        return Ok(());
    };
    let before = group.state();
    let mut copies = Vec::with_capacity(group.copies.len());
    for id in &group.copies {
        copies.extend(load_message(kv, *id)?);
    }
    let next = if group.split {
        group.attempts = copies.iter().map(|c| c.attempts).max().unwrap_or(0);
        split_state(&copies)
    } else {
        settle_race(kv, &mut group, &mut copies, event)?;
        group.attempts = copies.iter().map(|c| c.attempts).sum();
        fan_out_state(group.won_by, &copies)
    };
    if let Some(refused) = copies.iter().rev().find(|c| c.last_code != 0) {
        group.last_code = refused.last_code;
        group.last_error = format!(
            "copy {} on link {}: {}",
            refused.id, refused.link, refused.last_error
        );
    }
    // A finished group never changes again (its copies may still report: duplicates).
    let next = if before.is_terminal() { before } else { next };
    group.state = next as u32;
    group.not_before_ms = copies
        .iter()
        .filter(|c| c.state() == MessageState::Scheduled)
        .map(|c| c.not_before_ms)
        .min()
        .unwrap_or(0);
    if next != before {
        remember(&mut group, event.clone());
    }
    save_record(kv, &group, before)
}

/// A fan-out's race: the first copy delivered wins (its link and segments become the group's);
/// after the win, copies still waiting are withdrawn and copies delivered later are duplicates.
fn settle_race(
    kv: &mut impl Kv,
    group: &mut MessageRecord,
    copies: &mut [MessageRecord],
    event: &Event,
) -> Result<(), ProjectionError> {
    if group.won_by == 0 {
        let Some(winner) = copies.iter().find(|c| c.state() == MessageState::Delivered) else {
            return Ok(());
        };
        group.won_by = winner.id;
        group.link = winner.link.clone();
        group.slot = winner.slot.clone();
        group.segments = winner.segments.clone();
    }
    for copy in copies.iter_mut().filter(|c| c.id != group.won_by) {
        let state = copy.state();
        if matches!(state, MessageState::Accepted | MessageState::Scheduled) {
            // Delivered already: a copy not sent yet would only be a duplicate.
            unqueue(kv, copy)?;
            copy.state = MessageState::Canceled as u32;
            copy.last_error = format!(
                "withdrawn: copy {} delivered message {} first",
                group.won_by, group.id
            );
            remember(copy, event.clone());
            save_record(kv, copy, state)?;
        } else if state == MessageState::Delivered && !copy.duplicate {
            copy.duplicate = true;
            group.duplicates += 1;
            save_record(kv, copy, state)?;
        }
    }
    Ok(())
}

/// The most advanced (fan-out) or least advanced (split) state among live copies.
fn live_state(copies: &[MessageRecord], most_advanced: bool) -> Option<MessageState> {
    let rank = |s: &MessageState| match s {
        MessageState::Scheduled => 1,
        MessageState::Accepted => 2,
        MessageState::Sending => 3,
        _ => 4,
    };
    let live = copies
        .iter()
        .map(|c| c.state())
        .filter(|s| !s.is_terminal());
    if most_advanced {
        live.max_by_key(rank)
    } else {
        live.min_by_key(rank)
    }
}

/// Of finished copies, the most telling failure (UNDELIVERED over FAILED over EXPIRED over CANCELED);
/// None when every copy was delivered.
fn worst_failure(copies: &[MessageRecord]) -> Option<MessageState> {
    copies
        .iter()
        .map(|c| c.state())
        .filter(|s| *s != MessageState::Delivered)
        .max_by_key(|s| match s {
            MessageState::Undelivered => 4,
            MessageState::Failed => 3,
            MessageState::Expired => 2,
            _ => 1,
        })
}

/// A fan-out: delivered once any copy is; while any copy is alive, the most advanced live copy's
/// state; once all are finished, the most telling failure.
fn fan_out_state(won_by: u64, copies: &[MessageRecord]) -> MessageState {
    if won_by != 0 {
        return MessageState::Delivered;
    }
    live_state(copies, true)
        .or_else(|| worst_failure(copies))
        .unwrap_or(MessageState::Failed)
}

/// A split: as far as its least advanced live copy; once all are finished, delivered when all
/// were, else the most telling failure.
fn split_state(copies: &[MessageRecord]) -> MessageState {
    live_state(copies, false)
        .or_else(|| worst_failure(copies))
        .unwrap_or(MessageState::Delivered)
}

/// Cancels or expires a whole group: every copy still alive ends with `state`, and so does the
/// group. A cancellation (`only_if_unsent`) is refused while any copy is already being sent.
pub(crate) fn finish_group(
    kv: &mut impl Kv,
    mut group: MessageRecord,
    event: &Event,
    state: MessageState,
    only_if_unsent: bool,
) -> Result<EventOutcome, ProjectionError> {
    let before = group.state();
    let mut alive = Vec::new();
    for id in &group.copies {
        let Some(copy) = load_message(kv, *id)? else {
            continue;
        };
        let copy_state = copy.state();
        if copy_state.is_terminal() {
            continue;
        }
        if only_if_unsent && !matches!(copy_state, MessageState::Accepted | MessageState::Scheduled)
        {
            return Ok(EventOutcome::Ignored {
                reason: format!("copy {} is already being sent", copy.id),
            });
        }
        alive.push(copy);
    }
    for mut copy in alive {
        let copy_before = copy.state();
        unqueue(kv, &copy)?;
        copy.state = state as u32;
        remember(&mut copy, event.clone());
        save_record(kv, &copy, copy_before)?;
    }
    group.state = state as u32;
    group.not_before_ms = 0;
    remember(&mut group, event.clone());
    save_record(kv, &group, before)?;
    Ok(EventOutcome::Applied)
}
