//! Typed handles of the request-reply sockets (thesis §5.3): [`ReqSocket`], [`RepSocket`],
//! [`DealerSocket`], [`RouterSocket`], made by [`Node::req`], [`Node::rep`],
//! [`Node::dealer`] and [`Node::router`]. The rules (one request in flight, replies by the
//! link a request came on, routing ids) are the core protocols'
//! ([`a3m_core::socket::Req`] and the others); a handle only encodes and decodes the
//! [multipart](a3m_core::socket::multipart) messages and offers the calls its type has.
//!
//! ```
//! use std::time::Duration;
//! use a3m::NodeBuilder;
//!
//! let server = NodeBuilder::new("server").bind("127.0.0.1:0".parse()?).start()?;
//! let client = NodeBuilder::new("client")
//!     .bind("127.0.0.1:0".parse()?)
//!     .peer("server", server.local_addr())
//!     .start()?;
//! let rep = server.rep("echo")?;
//! let req = client.req("ask")?;
//! req.link("server/echo")?;
//! req.wait_for_link(Some(Duration::from_secs(5)))?;
//!
//! let replier = std::thread::spawn(move || -> a3m::Result<()> {
//!     let request = rep.recv()?;
//!     rep.send(&[b"re: ".as_slice(), &request].concat())
//! });
//! assert_eq!(req.request(b"hello", Duration::from_secs(5))?, b"re: hello");
//! replier.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use a3m_core::socket::multipart::{self, Multipart};
use a3m_core::socket::{Dealer, Rep, Req, Router};

use crate::handle::socket_handle;
use crate::{Error, Node, Result, Socket};

/// Encodes `frames` behind `routes` as one multipart message.
pub(crate) fn encode<R: AsRef<[u8]>, F: AsRef<[u8]>>(routes: &[R], frames: &[F]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(multipart::encoded_len(routes, frames));
    multipart::encode(routes, frames, &mut buf);
    buf
}

/// Decodes a received multipart message.
pub(crate) fn decode(payload: &[u8]) -> Result<Multipart<'_>> {
    Multipart::parse(payload).map_err(|e| Error::Malformed(e.to_string()))
}

/// The frames of a received message.
pub(crate) fn frames_of(payload: &[u8]) -> Result<Vec<Vec<u8>>> {
    Ok(decode(payload)?.frames().map(<[u8]>::to_vec).collect())
}

/// The frames of a received message, joined (one frame: the payload as sent).
pub(crate) fn body_of(payload: Vec<u8>) -> Result<Vec<u8>> {
    let m = decode(&payload)?;
    if m.frame_count() == 1 && m.route_count() == 0 {
        // The payload is `00 01` then the frame: drop the two bytes, keep the buffer.
        let mut payload = payload;
        payload.drain(..2);
        return Ok(payload);
    }
    Ok(m.frames().flatten().copied().collect())
}

/// A message with its envelope, as a router receives and sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutedMessage {
    /// The routing ids, head first: the head is the link the message came on (or leaves on).
    pub routes: Vec<Vec<u8>>,
    /// The message's frames.
    pub frames: Vec<Vec<u8>>,
}

impl RoutedMessage {
    /// A message of `frames` for the routing id `route`.
    pub fn new(route: impl Into<Vec<u8>>, frames: Vec<Vec<u8>>) -> Self {
        Self { routes: vec![route.into()], frames }
    }

    /// The routing id at the head of the envelope (empty if there is none).
    pub fn route(&self) -> &[u8] {
        self.routes.first().map_or(&[], Vec::as_slice)
    }

    /// The first frame (empty if there is none).
    pub fn body(&self) -> &[u8] {
        self.frames.first().map_or(&[], Vec::as_slice)
    }

    /// A reply: the same envelope, new frames.
    pub fn reply(&self, frames: Vec<Vec<u8>>) -> Self {
        Self { routes: self.routes.clone(), frames }
    }

    fn decode(payload: &[u8]) -> Result<Self> {
        let m = decode(payload)?;
        Ok(Self {
            routes: m.routes().map(<[u8]>::to_vec).collect(),
            frames: m.frames().map(<[u8]>::to_vec).collect(),
        })
    }

    fn encode(&self) -> Result<Vec<u8>> {
        for route in &self.routes {
            multipart::check_route(route).map_err(|_| {
                Error::InvalidArgument(format!(
                    "a routing id has 1 to {} bytes, not {}",
                    multipart::MAX_ROUTE_LEN,
                    route.len()
                ))
            })?;
        }
        Ok(encode(&self.routes, &self.frames))
    }
}

/// Sends, receives and round trips of the synchronous requester, or of a dealer.
macro_rules! frame_calls {
    ($name:ident) => {
        impl $name {
            /// Sends a one-frame message, waiting for a credit (and, on a request socket,
            /// until the previous request's reply was taken).
            pub fn send(&self, body: &[u8]) -> Result<()> {
                self.socket.send(&encode::<&[u8], _>(&[], &[body]))
            }

            /// Like [`Self::send`], failing with [`Error::Timeout`] after `timeout`.
            pub fn send_timeout(&self, body: &[u8], timeout: Duration) -> Result<()> {
                self.socket.send_timeout(&encode::<&[u8], _>(&[], &[body]), timeout)
            }

            /// Sends the frames as one message, atomically.
            pub fn send_multipart<F: AsRef<[u8]>>(&self, frames: &[F]) -> Result<()> {
                self.socket.send(&encode::<&[u8], _>(&[], frames))
            }

            /// Receives a message; its frames joined (use [`Self::recv_multipart`] to keep
            /// them apart).
            pub fn recv(&self) -> Result<Vec<u8>> {
                body_of(self.socket.recv()?)
            }

            /// Like [`Self::recv`], failing with [`Error::Timeout`] after `timeout`.
            pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
                body_of(self.socket.recv_timeout(timeout)?)
            }

            /// Receives a message's frames.
            pub fn recv_multipart(&self, timeout: Option<Duration>) -> Result<Vec<Vec<u8>>> {
                frames_of(&self.socket.recv_from(timeout)?.0)
            }
        }
    };
}

/// The requesting end of a synchronous request-reply (thesis §5.3.1).
///
/// One request at a time: after [`ReqSocket::send`], the next send waits (it does not fail)
/// until the reply was received, by this thread or another. [`ReqSocket::recv`] with no
/// request in flight fails at once with [`Error::Refused`]
/// ([`crate::Refusal::NoRequestPending`]); if the link to the replier closes first, with
/// [`crate::Refusal::ReplierGone`]. Requests go round robin to the linked repliers with
/// room. Links with [`RepSocket`]s or [`RouterSocket`]s. Every request reaches one replier
/// exactly once and every reply comes back exactly once: the socket never sticks on a lost
/// reply and is never answered twice.
#[derive(Debug)]
pub struct ReqSocket {
    socket: Socket,
}
socket_handle!(ReqSocket);
frame_calls!(ReqSocket);

impl ReqSocket {
    /// Sends `request` and waits for its reply, at most `timeout` in all.
    pub fn request(&self, request: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let started = std::time::Instant::now();
        self.send_timeout(request, timeout)?;
        self.recv_timeout(timeout.saturating_sub(started.elapsed()))
    }
}

/// The replying end of a synchronous request-reply (thesis §5.3.2).
///
/// Serves one request at a time: [`RepSocket::recv`] takes a request, the next
/// [`RepSocket::send`] is its reply and goes back on the link the request came from
/// (behind the request's envelope, so replies cross routers). Sending before receiving a
/// request fails with [`Error::Refused`] ([`crate::Refusal::NoRequestToReply`]); a second
/// receive before replying waits. Links with [`ReqSocket`]s or [`DealerSocket`]s.
#[derive(Debug)]
pub struct RepSocket {
    socket: Socket,
}
socket_handle!(RepSocket);
frame_calls!(RepSocket);

/// The asynchronous requester (thesis §5.3.3): sends and receives in any order, sends
/// round robin, receives fair-queued. Links with [`RepSocket`]s, [`RouterSocket`]s and
/// other dealers; passes envelopes through ([`DealerSocket::send_routed`]), so it can
/// stand between routers.
#[derive(Debug)]
pub struct DealerSocket {
    socket: Socket,
}
socket_handle!(DealerSocket);
frame_calls!(DealerSocket);

impl DealerSocket {
    /// Sends a message with its envelope (a broker forwarding what its router received).
    pub fn send_routed(&self, message: &RoutedMessage) -> Result<()> {
        self.socket.send(&message.encode()?)
    }

    /// Receives a message with its envelope.
    pub fn recv_routed(&self, timeout: Option<Duration>) -> Result<RoutedMessage> {
        RoutedMessage::decode(&self.socket.recv_from(timeout)?.0)
    }
}

/// The asynchronous replier and message router (thesis §5.3.4).
///
/// [`RouterSocket::recv_routed`] gives each message with the routing id of the link it came
/// on at the head of its envelope; [`RouterSocket::send_routed`] sends a message back by
/// the routing id at the head of its envelope (or by a peer's socket id, `node/tag`), so
/// a reply takes the exact link its request came on. A routing id naming no link (it
/// closed) fails with [`Error::Refused`] ([`crate::Refusal::UnknownRoute`]): nothing
/// accepted is dropped. Links with [`ReqSocket`]s, [`DealerSocket`]s and other routers.
#[derive(Debug)]
pub struct RouterSocket {
    socket: Socket,
}
socket_handle!(RouterSocket);

impl RouterSocket {
    /// Receives a message and its envelope, waiting up to `timeout` (`None`: for ever).
    pub fn recv_routed(&self, timeout: Option<Duration>) -> Result<RoutedMessage> {
        RoutedMessage::decode(&self.socket.recv_from(timeout)?.0)
    }

    /// Sends a message where the head of its envelope says, waiting for a credit on that
    /// link.
    pub fn send_routed(&self, message: &RoutedMessage) -> Result<()> {
        self.socket.send(&message.encode()?)
    }

    /// Like [`RouterSocket::send_routed`], failing with [`Error::Timeout`] after `timeout`.
    pub fn send_routed_timeout(&self, message: &RoutedMessage, timeout: Duration) -> Result<()> {
        self.socket.send_timeout(&message.encode()?, timeout)
    }

    /// Sends `body` as the reply to `request` (same envelope).
    pub fn reply(&self, request: &RoutedMessage, body: &[u8]) -> Result<()> {
        self.socket.send(&encode(&request.routes, &[body]))
    }
}

impl Node {
    /// Creates a request socket (see [`ReqSocket`]).
    pub fn req(&self, tag: &str) -> Result<ReqSocket> {
        Ok(ReqSocket { socket: self.socket(tag, Req::new())? })
    }

    /// Creates a reply socket (see [`RepSocket`]).
    pub fn rep(&self, tag: &str) -> Result<RepSocket> {
        Ok(RepSocket { socket: self.socket(tag, Rep::new())? })
    }

    /// Creates a dealer socket (see [`DealerSocket`]).
    pub fn dealer(&self, tag: &str) -> Result<DealerSocket> {
        Ok(DealerSocket { socket: self.socket(tag, Dealer::new())? })
    }

    /// Creates a router socket (see [`RouterSocket`]).
    pub fn router(&self, tag: &str) -> Result<RouterSocket> {
        Ok(RouterSocket { socket: self.socket(tag, Router::new())? })
    }
}
