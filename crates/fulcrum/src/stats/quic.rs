//! An HTTP/3 listener's QUIC counters: handshakes, connections open, request
//! streams, and what each connection's own statistics say when it ends (packets
//! lost, bytes on the wire, smoothed round-trip time).

use std::sync::atomic::{AtomicU64, Ordering};

use super::Timings;

/// QUIC counters of one listener, kept across reloads with its [`super::Traffic`].
#[derive(Debug, Default)]
pub struct QuicStats {
    /// Handshakes completed.
    pub handshakes_ok: AtomicU64,
    /// Handshakes that failed (bad TLS, timeout, refused).
    pub handshakes_failed: AtomicU64,
    /// Connections started (open = started - ended).
    pub started: AtomicU64,
    /// Connections ended.
    pub ended: AtomicU64,
    /// Request streams.
    pub streams: AtomicU64,
    /// Packets lost, counted when their connection ends.
    pub lost_packets: AtomicU64,
    /// UDP payload bytes received, counted when their connection ends.
    pub bytes_in: AtomicU64,
    /// UDP payload bytes sent, counted when their connection ends.
    pub bytes_out: AtomicU64,
    /// Each ended connection's smoothed round-trip time.
    pub rtt: Timings,
}

impl QuicStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        let ended = self.ended.load(Ordering::Relaxed);
        self.started.load(Ordering::Relaxed).saturating_sub(ended)
    }

    /// Adds an ended connection's own statistics.
    pub fn ended(&self, s: &quinn::ConnectionStats) {
        self.ended.fetch_add(1, Ordering::Relaxed);
        self.lost_packets
            .fetch_add(s.path.lost_packets, Ordering::Relaxed);
        self.bytes_in.fetch_add(s.udp_rx.bytes, Ordering::Relaxed);
        self.bytes_out.fetch_add(s.udp_tx.bytes, Ordering::Relaxed);
        self.rtt.observe(s.path.rtt);
    }
}
