#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The modules are private; what a binding, a relay or a transport needs is
// re-exported below. Layers, bottom up (a module imports only from layers
// below it):
// 1. the type table, errors, the version byte, the codec and hashing;
// 2. clocks, values and addresses;
// 3. the object types (`types/`: one file per type);
// 4. the wire format and the causal buffer;
// 5. the replica state machine (`replica/`).
mod codec;
mod error;
mod hashing;
mod registry;
mod version;

mod clock;
mod key;
mod value;

mod types;

mod buffer;
mod run;
pub mod wire;

mod replica;

pub use buffer::{Causal, CausalBuffer, MissingRange, Offer};
pub use clock::{Dot, ReplicaId, VectorClock, MAX_CLOCK_ENTRIES};
pub use codec::{Codec, MAX_DEPTH};
pub use error::{DecodeError, UpdateError};
pub use hashing::set_hash_key;
pub use key::{CrdtType, Field, Key};
pub use replica::{
    BufferedTxn, CatchUp, Config, CursorError, Event, ImportStatus, LinkId, LinkPolicy, PeerStats,
    ProtocolError, ReadOutcome, Record, RecoveryReport, RepairError, Repaired, Replica,
    RestoreError, SeqStats, Stats, SyncProgress, Ticket, Transmit, TxnSummary, UpdateOutcome,
    MAX_PROGRESS_ORIGINS,
};
pub use types::{effect, DeltaOp, Effect, Op, Pos, State, Update};
pub use value::Value;
pub use wire::{Frame, Hello, Snapshot, Txn, TxnBytes, TxnHeader, PROTOCOL_VERSION};
