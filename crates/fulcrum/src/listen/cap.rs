//! A listener's `max_connections`, and the count of connections it refused.
//!
//! Each worker accepts on its own SO_REUSEPORT socket, so no accept queue sees every
//! connection of a listener: the cap is one atomic shared by the workers, kept in the
//! listener's [`Traffic`] so that a reload neither resets it nor lets the connections
//! already open escape it. Only a capped listener touches it; the others never write
//! the shared cache line.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::stats::Traffic;

/// One place under a listener's `max_connections`, held for the connection's life.
#[derive(Debug)]
pub struct Slot(Arc<Traffic>);

impl Slot {
    /// Takes a place if fewer than `max` are taken; `None` (counted as a refusal)
    /// when the listener is full. Never waits: a queue of accepted connections
    /// would hold descriptors and memory without bound, which the cap is there to
    /// prevent.
    pub fn take(traffic: &Arc<Traffic>, max: u32) -> Option<Self> {
        let a = &traffic.admission;
        let taken = a
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if taken {
            Some(Self(traffic.clone()))
        } else {
            a.over_cap.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.admission.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One of a client address's places under `max_connections_per_client`, held for
/// the connection's life. The table is one mutex per listener, taken once per
/// connection (and only on a listener that sets the cap).
#[derive(Debug)]
pub struct ClientSlot(Arc<Traffic>, std::net::IpAddr);

impl ClientSlot {
    /// Takes a place for `ip` if it holds fewer than `max`; `None` (counted as a
    /// refusal) otherwise.
    pub fn take(traffic: &Arc<Traffic>, ip: std::net::IpAddr, max: u32) -> Option<Self> {
        let a = &traffic.admission;
        let mut clients = a.clients.lock().unwrap_or_else(|e| e.into_inner());
        let n = clients.entry(ip).or_insert(0);
        if *n >= max {
            drop(clients);
            a.per_client.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(Self(traffic.clone(), ip))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut clients = self
            .0
            .admission
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = clients.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Gone with the client's last connection: the table holds only
                // clients that have one open.
                clients.remove(&self.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_cap_and_frees_on_drop() {
        let t = Arc::new(Traffic::default());
        let a = Slot::take(&t, 2);
        let b = Slot::take(&t, 2);
        assert!(a.is_some() && b.is_some());
        assert!(Slot::take(&t, 2).is_none());
        assert_eq!(t.admission.refused(), (1, 0));
        drop(a);
        let c = Slot::take(&t, 2);
        assert!(c.is_some());
        // Per client: each address has its own count; the table empties as they go.
        let (x, y): (std::net::IpAddr, std::net::IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let x1 = ClientSlot::take(&t, x, 1);
        assert!(x1.is_some());
        assert!(ClientSlot::take(&t, x, 1).is_none());
        let y1 = ClientSlot::take(&t, y, 1);
        assert!(y1.is_some());
        drop((x1, y1));
        assert!(t.admission.clients.lock().unwrap().is_empty());
        assert!(ClientSlot::take(&t, x, 1).is_some());
        // A reload that lowers the cap below the open count refuses until enough close.
        assert!(Slot::take(&t, 1).is_none());
        drop((b, c));
        assert!(Slot::take(&t, 1).is_some());
        assert_eq!(t.admission.refused(), (2, 0));
    }
}
