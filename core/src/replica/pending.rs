//! Pending requests: reads and writes that wait for a clock (or for
//! durability), by ticket.

use super::*;

/// A request that waits for a clock (or for durability).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Ticket(pub u64);

/// Result of [`Replica::update_objects`].
#[derive(Clone, PartialEq, Debug)]
pub enum UpdateOutcome {
    /// Applied and durable; the clock includes the new transaction.
    Committed(VectorClock),
    /// Waiting for the client clock or for the record to be persisted; an
    /// [`Event::Committed`] or [`Event::UpdateFailed`] follows.
    Pending(Ticket),
}

/// Result of [`Replica::read_objects`].
#[derive(Clone, PartialEq, Debug)]
pub enum ReadOutcome {
    /// The values (in key order) and the clock they reflect.
    Ready(Vec<Value>, VectorClock),
    /// Waiting for the client clock; an [`Event::ReadReady`] follows.
    Pending(Ticket),
}

impl Replica {
    /// Reads objects. With a `client_clock` this replica has not reached,
    /// or while a local transaction the read would see is not durable yet,
    /// returns a ticket; [`Event::ReadReady`] follows.
    pub fn read_objects(
        &mut self,
        keys: Vec<Key>,
        client_clock: Option<&VectorClock>,
    ) -> ReadOutcome {
        let client = client_clock.cloned().unwrap_or_default();
        if client.leq(&self.clock) && self.all_local_durable() {
            let values = keys.iter().map(|k| self.value(k)).collect();
            return ReadOutcome::Ready(values, self.clock.merged(&client));
        }
        let ticket = self.ticket();
        self.pending.push(PendingRequest {
            ticket,
            clock: client,
            kind: PendingKind::Read(keys),
        });
        ReadOutcome::Pending(ticket)
    }

    /// Abandons a request that is still waiting for its client clock (the
    /// binding's timeout fired). Returns false if the ticket is unknown or
    /// its transaction already ran: such an update only waits for its record
    /// to be stored, will be acknowledged, and cannot be taken back.
    pub fn cancel(&mut self, ticket: Ticket) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| p.ticket != ticket);
        self.pending.len() != before
    }

    pub(super) fn ticket(&mut self) -> Ticket {
        let t = Ticket(self.next_ticket);
        self.next_ticket += 1;
        t
    }

    /// Completes every pending request whose clock is now reached.
    pub(super) fn run_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.pending.len() {
            let ready = self.pending[i].clock.leq(&self.clock)
                && match self.pending[i].kind {
                    PendingKind::Read(_) => self.all_local_durable(),
                    PendingKind::Update(_) => true,
                };
            if !ready {
                i += 1;
                continue;
            }
            let p = self.pending.remove(i);
            match p.kind {
                PendingKind::Read(keys) => {
                    let values = keys.iter().map(|k| self.value(k)).collect();
                    let clock = self.clock.merged(&p.clock);
                    self.events.push_back(Event::ReadReady {
                        ticket: p.ticket,
                        values,
                        clock,
                    });
                }
                PendingKind::Update(updates) => {
                    match self.commit_local(updates, p.clock, Some(p.ticket)) {
                        Ok(Some(clock)) => self.events.push_back(Event::Committed {
                            ticket: p.ticket,
                            clock,
                        }),
                        Ok(None) => {}
                        Err(error) => self.events.push_back(Event::UpdateFailed {
                            ticket: p.ticket,
                            error,
                        }),
                    }
                    // A local transaction may have unblocked nothing else,
                    // but restart the scan: the clock moved.
                    i = 0;
                }
            }
        }
    }
}
