//! A peer's bounded outgoing queue, and the one task that writes it to the
//! socket.
//!
//! Live forwarding never waits: [`Outbox::try_push`] fails when the queue
//! holds `frames` items or `bytes` bytes, and the room then closes the peer
//! as a slow consumer (with an `Error` frame that jumps the queue) instead
//! of stalling everyone else. Catch-up, which the peer's own task drives,
//! waits for room with [`Outbox::push`].
//!
//! The writer coalesces queued transactions into as few `Txns` frames as
//! `max_frame_bytes` allows, and flushes once per wake-up, so a busy room
//! costs one socket write per peer per burst rather than per transaction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use minidote_core::wire::{
    batch_frame, snapshot_id, snapshot_part_frame, snapshot_parts, Frame, SNAPSHOT_TAG,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// One queued item.
#[derive(Debug)]
pub enum Out {
    /// One encoded transaction, to be batched into a `Txns` frame.
    Txn(Bytes),
    /// A whole frame.
    Frame(Bytes),
}

impl Out {
    fn len(&self) -> usize {
        match self {
            Out::Txn(b) | Out::Frame(b) => b.len(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    reason: Mutex<Option<(u16, String)>>,
    closed: CancellationToken,
    /// Signalled by the writer each time it takes items off the queue.
    drained: tokio::sync::Notify,
}

/// The sending side of a peer's queue. Cloning shares the queue.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Out>,
    shared: Arc<Shared>,
}

/// The receiving side, owned by the writer task.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Out>,
    shared: Arc<Shared>,
}

/// A queue that holds at most `frames` items and (for live pushes)
/// `bytes` bytes.
pub fn outbox(frames: usize, bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(frames.max(1));
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_bytes: bytes,
        reason: Mutex::new(None),
        closed: CancellationToken::new(),
        drained: tokio::sync::Notify::new(),
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        Inbox { rx, shared },
    )
}

impl Outbox {
    /// Queues without waiting; false if the queue is full or closed.
    pub fn try_push(&self, item: Out) -> bool {
        let n = item.len();
        // Counted before the send, so the writer (on another thread) can
        // never subtract first.
        let before = self.shared.queued_bytes.fetch_add(n, Ordering::Relaxed);
        if before + n > self.shared.max_bytes || self.tx.try_send(item).is_err() {
            self.shared.queued_bytes.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Queues, waiting for room, both in items and (down to half the
    /// limit) in bytes, so a long catch-up never fills the queue past what
    /// live forwarding allows; false if the peer is gone.
    pub async fn push(&self, item: Out) -> bool {
        let n = item.len();
        loop {
            let drained = self.shared.drained.notified();
            if self.shared.queued_bytes.load(Ordering::Relaxed) <= self.shared.max_bytes / 2 {
                break;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.shared.closed.cancelled() => return false,
            }
        }
        self.shared.queued_bytes.fetch_add(n, Ordering::Relaxed);
        let sent = tokio::select! {
            r = self.tx.send(item) => r.is_ok(),
            _ = self.shared.closed.cancelled() => false,
        };
        if !sent {
            self.shared.queued_bytes.fetch_sub(n, Ordering::Relaxed);
        }
        sent
    }

    /// Ends the link: the writer sends `Error{code, message}` (ahead of
    /// anything still queued) and closes the socket. The first reason wins.
    pub fn close(&self, code: u16, message: String) {
        {
            let mut r = self.shared.reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_none() && !self.shared.closed.is_cancelled() {
                *r = Some((code, message));
            }
        }
        self.shared.closed.cancel();
    }

    /// Ends the link without an `Error` frame.
    pub fn close_quietly(&self) {
        self.shared.closed.cancel();
    }

    /// Whether the link is closing.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Resolves when the link is closing.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await
    }
}

/// A transport's sending half.
pub trait FrameSink: Send {
    /// Buffers one frame.
    fn feed(
        &mut self,
        frame: Bytes,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    /// Writes out what is buffered.
    fn flush(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    /// Flushes and closes.
    fn close(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// Most items taken per wake-up before a flush.
const BURST: usize = 4096;

/// Writes a peer's queue to its socket until the link closes.
pub async fn write_loop<S: FrameSink>(
    mut sink: S,
    mut inbox: Inbox,
    max_frame_bytes: usize,
    metrics: Arc<Metrics>,
    budget: Arc<SendBudget>,
    write_deadline: std::time::Duration,
) {
    let shared = inbox.shared.clone();
    let mut items = Vec::with_capacity(64);
    loop {
        tokio::select! {
            biased;
            _ = shared.closed.cancelled() => break,
            n = inbox.rx.recv_many(&mut items, BURST) => {
                if n == 0 {
                    break;
                }
            }
        }
        let bytes: usize = items.iter().map(Out::len).sum();
        shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        shared.drained.notify_waiters();
        let sent = send_items(
            &mut sink,
            &mut items,
            max_frame_bytes,
            &metrics,
            &budget,
            write_deadline,
        )
        .await;
        if let Err(e) = sent {
            if e.kind() == std::io::ErrorKind::TimedOut {
                Metrics::add(&metrics.slow_consumers_total, 1);
            }
            shared.closed.cancel();
            return;
        }
    }
    let reason = shared
        .reason
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some((code, message)) = reason {
        metrics.error_sent(code);
        let frame = Frame::Error { code, message }.encode();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let _ = sink.feed(Bytes::from(frame)).await;
            let _ = sink.close().await;
        })
        .await;
    } else {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sink.close()).await;
    }
}

/// The relay-wide budget for bytes of frames built but not yet on their
/// sockets: a frame is built (copied out of the shared log bytes) only once
/// its bytes fit, and they count until the sink flushed it, so readers that
/// stop reading cannot together hold more than the budget, however many
/// there are. Counted in KiB.
#[derive(Debug)]
pub struct SendBudget {
    kib: tokio::sync::Semaphore,
    total_kib: u32,
}

impl SendBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS as u32);
        Self {
            kib: tokio::sync::Semaphore::new(kib as usize),
            total_kib: kib,
        }
    }

    fn kib_of(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib)
    }
}

/// Feeds frames to a sink under the budget. Before it waits for budget it
/// flushes what it fed and gives that budget back, so a writer never holds
/// budget while it waits for more.
struct Feeder<'a, S> {
    sink: &'a mut S,
    /// A frame or flush that makes no progress for this long ends the link,
    /// so a reader that takes nothing holds its budget no longer.
    deadline: std::time::Duration,
    budget: &'a SendBudget,
    metrics: &'a Metrics,
    held: Vec<tokio::sync::SemaphorePermit<'a>>,
    frames: u64,
    sent: u64,
}

impl<'a, S: FrameSink> Feeder<'a, S> {
    /// Waits until a frame of about `len` bytes fits the budget.
    async fn reserve(&mut self, len: usize) -> std::io::Result<()> {
        let want = self.budget.kib_of(len);
        let permit = match self.budget.kib.try_acquire_many(want) {
            Ok(p) => p,
            Err(_) => {
                within(self.deadline, self.sink.flush()).await?;
                self.held.clear();
                Metrics::add(&self.metrics.send_budget_waits_total, 1);
                self.budget
                    .kib
                    .acquire_many(want)
                    .await
                    .expect("the budget is never closed")
            }
        };
        self.held.push(permit);
        Ok(())
    }

    /// Feeds a frame whose bytes were reserved.
    async fn feed(&mut self, frame: Bytes) -> std::io::Result<()> {
        self.sent += frame.len() as u64;
        self.frames += 1;
        within(self.deadline, self.sink.feed(frame)).await
    }

    async fn finish(mut self) -> std::io::Result<()> {
        within(self.deadline, self.sink.flush()).await?;
        self.held.clear();
        Metrics::add(&self.metrics.frames_sent_total, self.frames);
        Metrics::add(&self.metrics.bytes_sent_total, self.sent);
        Ok(())
    }
}

/// `io` unless it takes longer than `deadline`.
async fn within(
    deadline: std::time::Duration,
    io: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    match tokio::time::timeout(deadline, io).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the peer took nothing for the write deadline",
        )),
    }
}

async fn send_items<S: FrameSink>(
    sink: &mut S,
    items: &mut Vec<Out>,
    max_frame_bytes: usize,
    metrics: &Metrics,
    budget: &SendBudget,
    deadline: std::time::Duration,
) -> std::io::Result<()> {
    let mut out = Feeder {
        sink,
        deadline,
        budget,
        metrics,
        held: Vec::new(),
        frames: 0,
        sent: 0,
    };
    let mut run: Vec<Bytes> = Vec::new();
    let mut run_len = 0usize;
    for item in items.drain(..) {
        match item {
            Out::Txn(t) => {
                if !run.is_empty() && run_len + t.len() + 16 > max_frame_bytes {
                    out.reserve(run_len + 16).await?;
                    let f = flush_run(&mut run, &mut run_len);
                    out.feed(f).await?;
                }
                run_len += t.len();
                run.push(t);
            }
            Out::Frame(f) => {
                if !run.is_empty() {
                    out.reserve(run_len + 16).await?;
                    let r = flush_run(&mut run, &mut run_len);
                    out.feed(r).await?;
                }
                if f.len() > max_frame_bytes && f.get(1) == Some(&SNAPSHOT_TAG) {
                    // A base larger than a frame goes in pieces, each copied
                    // out of the shared bytes only as it is sent.
                    let state = f.slice(2..);
                    let id = snapshot_id(&state);
                    for (start, end) in snapshot_parts(state.len(), max_frame_bytes) {
                        out.reserve(end - start + 32).await?;
                        let part = snapshot_part_frame(id, state.len(), start, &state[start..end]);
                        out.feed(Bytes::from(part)).await?;
                    }
                    continue;
                }
                // Shared here, but the WebSocket layer copies it into its
                // write buffer until the flush.
                out.reserve(f.len()).await?;
                out.feed(f).await?;
            }
        }
    }
    if !run.is_empty() {
        out.reserve(run_len + 16).await?;
        let r = flush_run(&mut run, &mut run_len);
        out.feed(r).await?;
    }
    out.finish().await
}

fn flush_run(run: &mut Vec<Bytes>, run_len: &mut usize) -> Bytes {
    // A batch goes as a `Run` (columns, a few bytes a transaction), a
    // live write or two as `Txns`.
    let f = batch_frame(run);
    run.clear();
    *run_len = 0;
    Bytes::from(f)
}
