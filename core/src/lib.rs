#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod buffer;
pub mod clock;
pub mod codec;
pub mod crdt;
pub mod dots;
pub mod elems;
pub mod error;
mod hashing;
pub mod key;
pub mod replica;
pub mod value;
pub mod wire;

pub use buffer::{Causal, CausalBuffer, MissingRange, Offer};
pub use clock::{Dot, ReplicaId, VectorClock};
pub use crdt::{Effect, Op, State, Update};
pub use error::{DecodeError, ProtocolError, RepairError, UpdateError};
pub use hashing::set_hash_key;
pub use key::{CrdtType, Key};
pub use replica::{
    CatchUp, Config, Event, ImportStatus, LinkId, LinkPolicy, PeerStats, ReadOutcome, Record,
    RecoveryReport, Repaired, Replica, RestoreError, Stats, Ticket, Transmit, UpdateOutcome,
};
pub use value::Value;
pub use wire::{Frame, Hello, Snapshot, Txn, TxnBytes, TxnHeader, PROTOCOL_VERSION};
