#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Layers, bottom up; a module imports only from layers below it.
// 1. The type table, errors, the version byte and the codec.
pub mod codec;
pub mod error;
mod hashing;
mod registry;
mod version;
// 2. Clocks, values and addresses.
pub mod clock;
pub mod key;
pub mod value;
// 3. The object types.
mod types;
// 4. The wire format and the causal buffer.
pub mod buffer;
pub mod wire;
// 5. The replica state machine.
pub mod replica;

pub use buffer::{Causal, CausalBuffer, MissingRange, Offer};
pub use clock::{Dot, ReplicaId, VectorClock};
pub use error::{DecodeError, UpdateError};
pub use hashing::set_hash_key;
pub use key::{CrdtType, Field, Key};
pub use replica::errors::{ProtocolError, RepairError};
pub use replica::{
    CatchUp, Config, Event, ImportStatus, LinkId, LinkPolicy, PeerStats, ReadOutcome, Record,
    RecoveryReport, Repaired, Replica, RestoreError, Stats, Ticket, Transmit, UpdateOutcome,
};
pub use types::{effect, Effect, Op, State, Update};
pub use value::Value;
pub use wire::{Frame, Hello, Snapshot, Txn, TxnBytes, TxnHeader, PROTOCOL_VERSION};
