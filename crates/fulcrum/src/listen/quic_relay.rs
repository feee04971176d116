//! QUIC packets across a binary upgrade. The new process takes the old one's UDP
//! sockets (so the kernel's spread over the SO_REUSEPORT group does not change),
//! and both read them until the old one exits. Which process a packet belongs to
//! is in its destination connection ID: every ID a process issues starts with its
//! two-byte [`Tag`]. A packet read by the wrong process crosses to the right one
//! over a Unix datagram socket pair per worker socket (a [`Link`]), with the
//! client's address in front, and enters that process's endpoint as if read from
//! the UDP socket; the answer goes out of the shared UDP socket, from the same
//! address the client talks to.
//!
//! - New process: a packet whose ID carries the old tag goes to the old process.
//! - Old process: a packet whose ID does not carry its tag goes to the new one; a
//!   client's first packets (Initial, 0-RTT: an ID the client chose) go there too
//!   once this process stops taking connections.
//!
//! The tag is visible on the wire and the same for all of one process's
//! connections (as QUIC-LB's plaintext server IDs are); the seven other bytes are
//! random. IDs are 9 bytes, a length clients do not choose for the ID of their
//! first packets (quinn takes 20, aioquic and Chrome 8, ngtcp2 18), so a new
//! client's Initial is never taken for a packet of the other process by chance.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram as StdDatagram;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, ConnectionId, ConnectionIdGenerator, UdpPoller};

use super::socket::Socket;

/// Length of the connection IDs Fulcrum issues: one byte over the usual 8, so a
/// client's own first ID does not have it.
const CID_LEN: usize = 9;

/// Bytes in front of a relayed packet: address family, IP (16), port (2), ECN.
const FRAME: usize = 20;

/// The two bytes that start every connection ID one process issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag([u8; 2]);

impl Tag {
    /// A random tag other than `not` (the previous process's).
    pub fn pick(not: Option<Tag>) -> Tag {
        loop {
            let mut b = [0u8; 2];
            random(&mut b);
            let tag = Tag(b);
            if Some(tag) != not {
                return tag;
            }
        }
    }

    /// The tag in a handover entry's name.
    pub fn parse(hex: &str) -> Option<Tag> {
        let n = u16::from_str_radix(hex, 16).ok()?;
        (hex.len() == 4).then(|| Tag(n.to_be_bytes()))
    }

    /// A quinn endpoint configuration whose connection IDs carry this tag.
    pub fn endpoint_config(self) -> quinn::EndpointConfig {
        let mut config = quinn::EndpointConfig::default();
        config.cid_generator(move || Box::new(TaggedIds(self)));
        config
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", u16::from_be_bytes(self.0))
    }
}

fn random(buf: &mut [u8]) {
    // The same source rustls draws its keys from. It fails only without any OS
    // randomness, where TLS itself would not start; the ID is then mostly tag,
    // still distinct per connection by quinn's collision check.
    static SOURCE: OnceLock<&'static dyn rustls::crypto::SecureRandom> = OnceLock::new();
    let source = SOURCE.get_or_init(|| rustls::crypto::ring::default_provider().secure_random);
    let _ = source.fill(buf);
}

/// Connection IDs made of the process tag and six random bytes.
struct TaggedIds(Tag);

impl ConnectionIdGenerator for TaggedIds {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut b = [0u8; CID_LEN];
        b[..2].copy_from_slice(&self.0 .0);
        random(&mut b[2..]);
        ConnectionId::new(&b)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// What the first bytes of a QUIC packet say: whether a client opens a connection
/// with it (Initial, 0-RTT), and the tag of its destination ID, when that ID has
/// Fulcrum's length.
fn classify(packet: &[u8]) -> Option<(bool, Option<Tag>)> {
    let first = *packet.first()?;
    let (opening, id) = if first & 0x80 == 0 {
        (false, packet.get(1..1 + CID_LEN)?)
    } else {
        let len = usize::from(*packet.get(5)?);
        let kind = (first >> 4) & 0x3;
        (kind <= 1, packet.get(6..6 + len)?)
    };
    let tag = match id {
        [a, b, ..] if id.len() == CID_LEN => Some(Tag([*a, *b])),
        _ => None,
    };
    Some((opening, tag))
}

/// One end of a socket pair between an old and a new process, for one worker
/// socket. Sends go straight out of the std socket (a non-blocking send needs no
/// runtime); receives through the runtime, set up on first use (the pair is
/// created off it).
#[derive(Debug)]
struct Link {
    send: Option<StdDatagram>,
    pending: Mutex<Option<StdDatagram>>,
    ready: OnceLock<tokio::net::UnixDatagram>,
    /// The other process is gone (a send was refused): nothing crosses any more.
    dead: AtomicBool,
}

impl Link {
    fn new(socket: StdDatagram) -> Self {
        let send = socket
            .set_nonblocking(true)
            .and_then(|()| socket.try_clone())
            .ok();
        Self {
            dead: AtomicBool::new(send.is_none()),
            send,
            pending: Mutex::new(Some(socket)),
            ready: OnceLock::new(),
        }
    }

    fn receiver(&self) -> Option<&tokio::net::UnixDatagram> {
        if self.dead.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(s) = self.ready.get() {
            return Some(s);
        }
        let std = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        match tokio::net::UnixDatagram::from_std(std) {
            Ok(s) => Some(self.ready.get_or_init(|| s)),
            Err(error) => {
                tracing::warn!(%error, "QUIC relay unusable");
                self.dead.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    fn alive(&self) -> bool {
        !self.dead.load(Ordering::Relaxed)
    }

    /// Sends one packet from `from` across; dropped when the pair is full (QUIC
    /// retransmits), and the link given up when the other process is gone.
    fn send(&self, from: SocketAddr, ecn: Option<EcnCodepoint>, packet: &[u8]) {
        let Some(socket) = self.send.as_ref().filter(|_| self.alive()) else {
            return;
        };
        let mut frame = Vec::with_capacity(FRAME + packet.len());
        let (family, ip) = match from.ip() {
            IpAddr::V4(v4) => (4u8, v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => (6u8, v6.octets()),
        };
        frame.push(family);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&from.port().to_be_bytes());
        frame.push(ecn.map_or(0, |e| e as u8));
        frame.extend_from_slice(packet);
        match socket.send(&frame) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.dead.store(true, Ordering::Relaxed),
        }
    }

    /// A packet the other process sent across, moved to the front of `buf`.
    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Option<RecvMeta>> {
        let Some(socket) = self.receiver() else {
            return Poll::Ready(None);
        };
        loop {
            let mut read = tokio::io::ReadBuf::new(buf);
            match socket.poll_recv(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    self.dead.store(true, Ordering::Relaxed);
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(())) => {}
            }
            let n = read.filled().len();
            let Some(meta) = unframe(buf.get(..n).unwrap_or_default()) else {
                continue;
            };
            buf.copy_within(FRAME..n, 0);
            return Poll::Ready(Some(meta));
        }
    }
}

fn unframe(frame: &[u8]) -> Option<RecvMeta> {
    let head = frame.get(..FRAME)?;
    let len = frame.len() - FRAME;
    if len == 0 {
        return None;
    }
    let mut ip = [0u8; 16];
    ip.copy_from_slice(head.get(1..17)?);
    let ip = Ipv6Addr::from(ip);
    let ip = match head.first()? {
        4 => IpAddr::V4(ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
        _ => IpAddr::V6(ip),
    };
    let port = u16::from_be_bytes([*head.get(17)?, *head.get(18)?]);
    Some(RecvMeta {
        addr: SocketAddr::new(ip, port),
        len,
        stride: len,
        ecn: EcnCodepoint::from_bits(*head.get(19)?),
        dst_ip: None,
    })
}

/// One worker socket's place in an upgrade: this process's tag, the link to the
/// process it replaced (while that one runs), and the link to its successor.
#[derive(Debug)]
pub struct Relay {
    tag: Tag,
    older: Option<(Tag, Link)>,
    newer: ArcSwapOption<Link>,
    /// A successor was linked: reads are sorted (checked on every read, so a flag
    /// rather than the link).
    linked: AtomicBool,
    /// This process takes no new connections: a client's first packets go to the
    /// successor.
    retired: AtomicBool,
}

impl Relay {
    /// A relay for a socket of the process tagged `tag`; `older` is the link to the
    /// process it replaced and that process's tag, for an inherited socket.
    pub fn new(tag: Tag, older: Option<(Tag, StdDatagram)>) -> Arc<Self> {
        Arc::new(Self {
            tag,
            older: older.map(|(t, s)| (t, Link::new(s))),
            newer: ArcSwapOption::empty(),
            linked: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        })
    }

    /// The tag of this process's connection IDs.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// A link to a successor about to start: returns the end it gets. Packets of
    /// its connections read here cross from now on. Nothing needs waking: what
    /// crosses back was read from the shared socket, whose every datagram wakes
    /// both processes' reads, and a read polls the links too.
    pub fn link_newer(&self) -> io::Result<StdDatagram> {
        let (here, there) = StdDatagram::pair()?;
        self.newer.store(Some(Arc::new(Link::new(here))));
        self.linked.store(true, Ordering::Relaxed);
        Ok(there)
    }

    /// Whether packets may belong to another process: a predecessor still runs,
    /// or a successor was started. Otherwise reads pass untouched.
    fn active(&self) -> bool {
        self.older.as_ref().is_some_and(|(_, l)| l.alive())
            || (self.linked.load(Ordering::Relaxed)
                && self.newer.load().as_ref().is_some_and(|l| l.alive()))
    }

    /// This process takes no new connections: clients' first packets go to the
    /// successor, if there is one.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Sends across the datagrams of one read (several, `stride` apart, with
    /// GRO) that belong to the other process, each by its own ID: one client
    /// address may hold connections of both. Those that stay move together at
    /// the front; returns their length.
    fn keep_own(
        &self,
        buf: &mut [u8],
        stride: usize,
        from: SocketAddr,
        ecn: Option<EcnCodepoint>,
    ) -> usize {
        let (mut kept, mut at) = (0, 0);
        while at < buf.len() {
            let end = (at + stride).min(buf.len());
            let packet = buf.get(at..end).unwrap_or_default();
            let route = self.route(packet);
            let link = match &route {
                Route::Here => None,
                Route::Older => self.older.as_ref().map(|(_, l)| l),
                Route::Newer(l) => Some(&**l),
            };
            match link {
                Some(link) => link.send(from, ecn, packet),
                None => {
                    buf.copy_within(at..end, kept);
                    kept += end - at;
                }
            }
            at = end;
        }
        kept
    }

    fn route(&self, packet: &[u8]) -> Route {
        let Some((opening, tag)) = classify(packet) else {
            return Route::Here;
        };
        if let Some((older, link)) = &self.older {
            if tag == Some(*older) && link.alive() {
                return Route::Older;
            }
        }
        if tag == Some(self.tag) {
            return Route::Here;
        }
        match &*self.newer.load() {
            Some(newer) if newer.alive() && (!opening || self.retired.load(Ordering::Relaxed)) => {
                Route::Newer(newer.clone())
            }
            _ => Route::Here,
        }
    }
}

enum Route {
    Here,
    Older,
    Newer(Arc<Link>),
}

/// A handover entry for a link end: carried as the datagram socket it is, told
/// apart from UDP by its entry's name.
pub fn link_to_socket(link: StdDatagram) -> Socket {
    Socket::Udp(std::net::UdpSocket::from(OwnedFd::from(link)))
}

/// The link end in a received handover entry; `None` for anything but a Unix
/// socket.
pub fn socket_to_link(socket: Socket) -> Option<StdDatagram> {
    let Socket::Udp(s) = socket else { return None };
    let fd = OwnedFd::from(s);
    let domain = socket2::SockRef::from(&fd).domain().ok()?;
    (domain == socket2::Domain::UNIX).then(|| StdDatagram::from(fd))
}

/// The UDP socket a quinn endpoint reads, with packets of the other process
/// crossing over its relay.
#[derive(Debug)]
pub struct Relayed {
    inner: Arc<dyn AsyncUdpSocket>,
    relay: Arc<Relay>,
}

impl Relayed {
    /// `socket` (made by quinn's runtime) with `relay` in front of its reads.
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, relay: Arc<Relay>) -> Self {
        Self { inner, relay }
    }

    /// Packets that crossed from the other process, one per call.
    fn poll_links(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Option<usize> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return None;
        };
        if let Some((_, link)) = &self.relay.older {
            if let Poll::Ready(Some(got)) = link.poll_recv(cx, buf) {
                *m = got;
                return Some(1);
            }
        }
        if let Some(link) = &*self.relay.newer.load() {
            if let Poll::Ready(Some(got)) = link.poll_recv(cx, buf) {
                *m = got;
                return Some(1);
            }
        }
        None
    }

    /// Sends across what belongs to the other process among `n` datagrams read;
    /// the rest move to the front. Returns how many stay.
    fn sort(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta], n: usize) -> usize {
        let mut kept = 0;
        for i in 0..n.min(bufs.len()).min(meta.len()) {
            let m = meta[i];
            let Some(buf) = bufs[i].get_mut(..m.len) else {
                continue;
            };
            let len = self.relay.keep_own(buf, m.stride.max(1), m.addr, m.ecn);
            if len == 0 {
                continue;
            }
            if kept != i {
                let (front, back) = bufs.split_at_mut(i);
                let (Some(to), Some(from)) = (front.get_mut(kept), back.first()) else {
                    continue;
                };
                let Some(to) = to.get_mut(..len) else {
                    continue;
                };
                to.copy_from_slice(from.get(..len).unwrap_or_default());
            }
            meta[kept] = RecvMeta { len, ..m };
            kept += 1;
        }
        kept
    }
}

impl AsyncUdpSocket for Relayed {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let active = self.relay.active();
        if active {
            if let Some(n) = self.poll_links(cx, bufs, meta) {
                return Poll::Ready(Ok(n));
            }
        }
        loop {
            let n = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            let kept = if active { self.sort(bufs, meta, n) } else { n };
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// A worker's HTTP/3 socket and its relay.
#[derive(Debug)]
pub struct QuicSocket {
    /// The UDP socket.
    pub udp: std::net::UdpSocket,
    /// Its place in an upgrade.
    pub relay: Arc<Relay>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(id: [u8; CID_LEN]) -> Vec<u8> {
        let mut p = vec![0x40];
        p.extend_from_slice(&id);
        p.extend_from_slice(&[0; 20]);
        p
    }

    fn long(kind: u8, id: &[u8]) -> Vec<u8> {
        let mut p = vec![0xc0 | (kind << 4), 0, 0, 0, 1, id.len() as u8];
        p.extend_from_slice(id);
        p.extend_from_slice(&[0; 20]);
        p
    }

    #[test]
    fn packets_go_where_their_ids_were_issued() {
        let (old, new) = (Tag([1, 2]), Tag([3, 4]));
        let (a, _b) = StdDatagram::pair().unwrap();
        let relay = Relay::new(new, Some((old, a)));
        let route = |p: &[u8]| match relay.route(p) {
            Route::Here => "here",
            Route::Older => "older",
            Route::Newer(_) => "newer",
        };
        assert_eq!(route(&short([1, 2, 9, 9, 9, 9, 9, 9, 9])), "older");
        assert_eq!(route(&short([3, 4, 9, 9, 9, 9, 9, 9, 9])), "here");
        assert_eq!(route(&long(2, &[1, 2, 0, 0, 0, 0, 0, 0, 0])), "older");
        // A client's Initial with an ID of its own choosing stays with the new
        // process, even one that starts with the old tag (clients choose 8 bytes).
        assert_eq!(route(&long(0, &[7; 16])), "here");
        assert_eq!(route(&long(0, &[1, 2, 0, 0, 0, 0, 0, 0])), "here");
        assert_eq!(route(&[]), "here");

        // The old process: other tags go to the successor, first packets only once
        // it is retired.
        let relay = Relay::new(old, None);
        let _there = relay.link_newer().unwrap();
        let route = |p: &[u8]| match relay.route(p) {
            Route::Here => "here",
            Route::Older => "older",
            Route::Newer(_) => "newer",
        };
        assert_eq!(route(&short([3, 4, 9, 9, 9, 9, 9, 9, 9])), "newer");
        assert_eq!(route(&short([1, 2, 9, 9, 9, 9, 9, 9, 9])), "here");
        assert_eq!(route(&long(0, &[7; 8])), "here");
        relay.retire();
        assert_eq!(route(&long(0, &[7; 8])), "newer");
        assert_eq!(route(&long(1, &[7; 12])), "newer");
        assert_eq!(route(&long(0, &[1, 2, 0, 0, 0, 0, 0, 0, 0])), "here");
    }

    #[test]
    fn a_gro_batch_is_split_by_each_datagram_s_id() {
        let (old, new) = (Tag([1, 2]), Tag([3, 4]));
        let (a, b) = StdDatagram::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let relay = Relay::new(new, Some((old, a)));
        let mut own = short([3, 4, 7, 7, 7, 7, 7, 7, 7]);
        own[20] = 0xee;
        let mut batch = short([1, 2, 9, 9, 9, 9, 9, 9, 9]);
        batch.extend_from_slice(&own);
        batch.extend_from_slice(&short([1, 2, 8, 8, 8, 8, 8, 8, 8])[..12]);
        let from: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let kept = relay.keep_own(&mut batch, own.len(), from, None);
        assert_eq!(kept, own.len());
        assert_eq!(&batch[..kept], &own[..]);
        let mut frame = [0u8; 128];
        assert_eq!(b.recv(&mut frame).unwrap(), FRAME + own.len());
        assert_eq!(
            b.recv(&mut frame).unwrap(),
            FRAME + 12,
            "the short last datagram"
        );
        assert!(b.recv(&mut frame).is_err(), "nothing else crossed");
    }

    #[test]
    fn a_frame_carries_the_client_address() {
        for from in ["192.0.2.7:4433", "[2001:db8::1]:443"] {
            let from: SocketAddr = from.parse().unwrap();
            let (a, b) = StdDatagram::pair().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (sender, receiver) = (Link::new(a), Link::new(b));
                sender.send(from, Some(EcnCodepoint::Ect0), b"packet");
                let mut buf = [0u8; 64];
                let meta = std::future::poll_fn(|cx| receiver.poll_recv(cx, &mut buf))
                    .await
                    .unwrap();
                assert_eq!(meta.addr, from);
                assert_eq!(meta.len, 6);
                assert_eq!(meta.ecn, Some(EcnCodepoint::Ect0));
                assert_eq!(&buf[..6], b"packet");
            });
        }
    }

    #[test]
    fn tags_differ_from_the_predecessor_and_survive_their_name() {
        let old = Tag::pick(None);
        let new = Tag::pick(Some(old));
        assert_ne!(old, new);
        assert_eq!(Tag::parse(&new.to_string()), Some(new));
        assert_eq!(Tag::parse("12345"), None);
    }
}
