//! Typed handles of the synchronized publish-subscribe sockets (thesis §5.4): [`PubSocket`],
//! [`SubSocket`], [`XPubSocket`], [`XSubSocket`], made by [`Node::publisher`],
//! [`Node::subscriber`], [`Node::xpub`] and [`Node::xsub`]. The rules (prefix filtering at
//! the publisher, all-or-none publishing paced by the slowest subscriber, subscriptions
//! applied in order and replayed on relink, their bounds) are the core protocols', described
//! in [`a3m_core::socket::pub_sub`]; a handle encodes and decodes the messages (the topic
//! is the first [multipart](a3m_core::socket::multipart) frame) and offers its type's calls.
//!
//! ```
//! use std::time::Duration;
//! use a3m::NodeBuilder;
//!
//! let hub = NodeBuilder::new("hub").bind("127.0.0.1:0".parse()?).start()?;
//! let reader = NodeBuilder::new("reader")
//!     .bind("127.0.0.1:0".parse()?)
//!     .peer("hub", hub.local_addr())
//!     .start()?;
//! let publisher = hub.publisher("news")?;
//! let subscriber = reader.subscriber("desk")?;
//! subscriber.subscribe(b"weather.")?;
//! subscriber.link("hub/news")?;
//! // Publishing before the subscription arrived would reach nobody: wait for it.
//! publisher.wait_for_subscribers(1, Duration::from_secs(5))?;
//!
//! publisher.publish(b"sport.results", b"2-1")?; // nobody subscribed: sent to nobody
//! publisher.publish(b"weather.paris", b"sunny")?;
//! let m = subscriber.recv_timeout(Duration::from_secs(5))?;
//! assert_eq!((m.topic.as_slice(), m.payload.as_slice()), (&b"weather.paris"[..], &b"sunny"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::RefCell;
use std::time::{Duration, Instant};

use a3m_core::poll::Events;
use a3m_core::socket::multipart;
use a3m_core::socket::pub_sub::{CMD_SUBSCRIBERS, subscription_command};
use a3m_core::socket::{Pub, Sub};

use crate::handle::socket_handle;
use crate::patterns::decode;
use crate::{Error, Node, Result, Socket};

thread_local! {
    /// The buffer a publish encodes its message into, reused by the thread's publishes.
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A received publication: its topic and payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publication {
    /// The topic (the message's first frame).
    pub topic: Vec<u8>,
    /// The payload (the other frames, joined; see [`SubSocket::recv_multipart`]).
    pub payload: Vec<u8>,
}

impl Publication {
    fn decode(bytes: &[u8]) -> Result<Self> {
        let m = decode(bytes)?;
        let mut frames = m.frames();
        let topic = frames.next().unwrap_or_default().to_vec();
        Ok(Self { topic, payload: frames.flatten().copied().collect() })
    }
}

/// A subscription message, as an [`XPubSocket`] hands it out and an [`XSubSocket`] takes
/// it (ZeroMQ's XPUB form: `01` then the topic to subscribe, `00` then the topic to
/// unsubscribe).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// Subscribe (true) or unsubscribe (false).
    pub subscribe: bool,
    /// The topic prefix.
    pub topic: Vec<u8>,
}

impl Subscription {
    /// The message in ZeroMQ's form (`01`/`00` then the topic).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.topic.len() + 1);
        subscription_command(self.subscribe, &self.topic, &mut out);
        out
    }

    /// Parses ZeroMQ's form; `None` if the first byte is neither `00` nor `01`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first()? {
            (0, topic) => Some(Self { subscribe: false, topic: topic.to_vec() }),
            (1, topic) => Some(Self { subscribe: true, topic: topic.to_vec() }),
            _ => None,
        }
    }
}

/// Encodes `topic` + `frames` in the thread's reused buffer and runs `f` on it.
fn with_encoded<F: AsRef<[u8]>, T>(topic: &[u8], frames: &[F], f: impl FnOnce(&[u8]) -> T) -> T {
    ENCODED.with(|cell| {
        // A publish blocked in another handle's call on this thread cannot happen (calls do
        // not nest), but stay correct if one ever does.
        let Ok(mut buf) = cell.try_borrow_mut() else {
            return f(&encode_publication(topic, frames));
        };
        buf.clear();
        encode_into(topic, frames, &mut buf);
        f(&buf)
    })
}

fn encode_publication<F: AsRef<[u8]>>(topic: &[u8], frames: &[F]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(topic, frames, &mut buf);
    buf
}

fn encode_into<F: AsRef<[u8]>>(topic: &[u8], frames: &[F], buf: &mut Vec<u8>) {
    match frames {
        [] => multipart::encode::<&[u8], _>(&[], &[topic], buf),
        [one] => multipart::encode::<&[u8], _>(&[], &[topic, one.as_ref()], buf),
        many => {
            let all: Vec<&[u8]> =
                std::iter::once(topic).chain(many.iter().map(AsRef::as_ref)).collect();
            multipart::encode::<&[u8], _>(&[], &all, buf);
        }
    }
}

/// Runs a command on the socket's protocol and returns its reply.
fn command(socket: &Socket, command: &[u8]) -> Result<Vec<u8>> {
    let mut reply = Vec::new();
    socket.protocol_call(Events::OUT, None, |state, key| {
        state.layer.command(key, command, &mut reply)
    })?;
    Ok(reply)
}

fn subscribe_command(socket: &Socket, subscribe: bool, topic: &[u8]) -> Result<()> {
    let mut cmd = Vec::with_capacity(topic.len() + 1);
    subscription_command(subscribe, topic, &mut cmd);
    command(socket, &cmd).map(drop)
}

/// (subscribed links, their subscriptions).
fn subscriber_counts(socket: &Socket) -> Result<(usize, usize)> {
    let reply = command(socket, &[CMD_SUBSCRIBERS])?;
    let count = |at: usize| {
        reply
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_be_bytes(b) as usize)
            .ok_or_else(|| Error::Malformed("subscriber count".into()))
    };
    Ok((count(0)?, count(4)?))
}

/// The calls of both publishers.
macro_rules! publisher_calls {
    ($name:ident) => {
        impl $name {
            /// Publishes `payload` on `topic` to every subscriber of a prefix of `topic`,
            /// waiting until all of them have a credit, then sending to all at once. With no
            /// matching subscriber it returns at once, having sent to nobody.
            pub fn publish(&self, topic: &[u8], payload: &[u8]) -> Result<()> {
                with_encoded(topic, &[payload], |m| self.socket.send(m))
            }

            /// Like [`Self::publish`], failing with [`Error::Timeout`] after `timeout`,
            /// having sent to nobody.
            pub fn publish_timeout(
                &self,
                topic: &[u8],
                payload: &[u8],
                timeout: Duration,
            ) -> Result<()> {
                with_encoded(topic, &[payload], |m| self.socket.send_timeout(m, timeout))
            }

            /// Like [`Self::publish`], failing with [`Error::WouldBlock`] instead of waiting.
            pub fn try_publish(&self, topic: &[u8], payload: &[u8]) -> Result<()> {
                with_encoded(topic, &[payload], |m| self.socket.try_send(m))
            }

            /// Publishes `frames` on `topic` as one message (the topic is its first frame).
            pub fn publish_multipart<F: AsRef<[u8]>>(
                &self,
                topic: &[u8],
                frames: &[F],
            ) -> Result<()> {
                with_encoded(topic, frames, |m| self.socket.send(m))
            }

            /// Like [`Self::publish_multipart`], failing with [`Error::Timeout`] after
            /// `timeout`, having sent to nobody.
            pub fn publish_multipart_timeout<F: AsRef<[u8]>>(
                &self,
                topic: &[u8],
                frames: &[F],
                timeout: Duration,
            ) -> Result<()> {
                with_encoded(topic, frames, |m| self.socket.send_timeout(m, timeout))
            }

            /// How many established links hold at least one subscription.
            pub fn subscribers(&self) -> Result<usize> {
                Ok(subscriber_counts(&self.socket)?.0)
            }

            /// How many subscriptions the established links hold in all (a link subscribed
            /// to two prefixes counts twice).
            pub fn subscriptions(&self) -> Result<usize> {
                Ok(subscriber_counts(&self.socket)?.1)
            }

            /// Waits until at least `n` links hold a subscription, up to `timeout`
            /// ([`Error::Timeout`]).
            pub fn wait_for_subscribers(&self, n: usize, timeout: Duration) -> Result<()> {
                let deadline = Instant::now() + timeout;
                let mut pause = Duration::from_micros(100);
                while self.subscribers()? < n {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout);
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Ok(())
            }
        }
    };
}

/// The calls of both subscribers.
macro_rules! subscriber_calls {
    ($name:ident) => {
        impl $name {
            /// Receives the next publication, waiting for one. Fails with
            /// [`Error::Refused`] once for each subscription a publisher refused (its bound,
            /// [`a3m_core::socket::pub_sub::MAX_SUBSCRIPTIONS`] per link).
            pub fn recv(&self) -> Result<Publication> {
                Publication::decode(&self.socket.recv()?)
            }

            /// Like [`Self::recv`], failing with [`Error::Timeout`] after `timeout`.
            pub fn recv_timeout(&self, timeout: Duration) -> Result<Publication> {
                Publication::decode(&self.socket.recv_timeout(timeout)?)
            }

            /// Like [`Self::recv`], failing with [`Error::WouldBlock`] instead of waiting.
            pub fn try_recv(&self) -> Result<Publication> {
                Publication::decode(&self.socket.try_recv()?)
            }

            /// Receives a publication's frames, the topic first, waiting up to `timeout`
            /// (`None`: for ever).
            pub fn recv_multipart(&self, timeout: Option<Duration>) -> Result<Vec<Vec<u8>>> {
                crate::patterns::frames_of(&self.socket.recv_from(timeout)?.0)
            }
        }
    };
}

/// The publishing end of a synchronized publish-subscribe (thesis §5.4.1).
///
/// Each publication goes to every linked subscriber holding a subscription to a prefix of
/// its topic (publisher-side filtering, a trie of prefixes), to all of them at once or to
/// none: [`PubSocket::publish`] waits until every matching subscriber has a credit, so the
/// slowest subscriber sets the pace and nothing is ever dropped;
/// [`PubSocket::publish_timeout`] fails with [`Error::Timeout`] having sent to nobody. A
/// publication that matches nobody is sent to nobody (at once).
///
/// Ordering: with one publishing thread, every subscriber receives in the global publishing
/// order; with one thread per topic, each topic stays in order; several threads publishing
/// one topic get no order among them. A subscriber's subscriptions reach the publisher a
/// little after [`SubSocket::subscribe`] (and after each link is made):
/// [`PubSocket::wait_for_subscribers`] waits for them. A link holds at most
/// [`a3m_core::socket::pub_sub::MAX_SUBSCRIPTIONS`] subscriptions; the excess ones are
/// refused and reported to the subscriber. Writable ([`crate::Events::OUT`]) when every
/// subscribed link has a credit. Links with [`SubSocket`]s and [`XSubSocket`]s.
///
/// ```
/// use std::time::Duration;
/// let node = a3m::NodeBuilder::new("n").bind("127.0.0.1:0".parse()?).start()?;
/// let publisher = node.publisher("pub")?;
/// let fast = node.subscriber("fast")?;
/// let slow = node.subscriber("slow")?;
/// slow.set_options(slow.options()?.capacity(2))?; // a small window: it sets the pace
/// for s in [&fast, &slow] {
///     s.subscribe(b"")?;
///     s.link("n/pub")?;
/// }
/// publisher.wait_for_subscribers(2, Duration::from_secs(5))?;
/// publisher.publish(b"t", b"1")?;
/// publisher.publish(b"t", b"2")?;
/// // The slow one has no credit left: the next publish reaches nobody in time.
/// assert!(matches!(
///     publisher.publish_timeout(b"t", b"3", Duration::from_millis(50)),
///     Err(a3m::Error::Timeout)
/// ));
/// assert_eq!(slow.recv()?.payload, b"1");
/// publisher.publish_timeout(b"t", b"3", Duration::from_secs(5))?;
/// let got: Vec<_> = (0..3).map(|_| fast.recv().unwrap().payload).collect();
/// assert_eq!(got, [b"1", b"2", b"3"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PubSocket {
    socket: Socket,
}
socket_handle!(PubSocket);
publisher_calls!(PubSocket);

/// The subscribing end of a synchronized publish-subscribe (thesis §5.4.2).
///
/// [`SubSocket::subscribe`] registers a topic prefix locally and tells every linked
/// publisher; a link made later (or again) is told all of them. Subscriptions are counted:
/// subscribing twice needs two [`SubSocket::unsubscribe`]s. Receives fair-queued over its
/// publishers, each publisher's messages in order; a publication already sent before an
/// unsubscribe reached the publisher is still delivered (exactly once). More than
/// [`a3m_core::socket::pub_sub::MAX_SUBSCRIPTIONS`] topics, or a topic longer than
/// [`a3m_core::socket::pub_sub::MAX_TOPIC`] bytes, are refused at once
/// ([`Error::Refused`]); a subscription a publisher refuses fails the next receive with
/// [`Error::Refused`]. Links with [`PubSocket`]s and [`XPubSocket`]s.
///
/// ```
/// use std::time::Duration;
/// let node = a3m::NodeBuilder::new("n").bind("127.0.0.1:0".parse()?).start()?;
/// let publisher = node.publisher("pub")?;
/// let subscriber = node.subscriber("sub")?;
/// subscriber.subscribe(b"a")?;
/// subscriber.link("n/pub")?;
/// publisher.wait_for_subscribers(1, Duration::from_secs(5))?;
/// publisher.publish_multipart(b"ab", &[b"x", b"y"])?;
/// assert_eq!(subscriber.recv_multipart(None)?, [b"ab".to_vec(), b"x".to_vec(), b"y".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SubSocket {
    socket: Socket,
}
socket_handle!(SubSocket);
subscriber_calls!(SubSocket);

impl SubSocket {
    /// Subscribes to every topic that starts with `prefix` (the empty prefix: all).
    pub fn subscribe(&self, prefix: &[u8]) -> Result<()> {
        subscribe_command(&self.socket, true, prefix)
    }

    /// Withdraws one subscription to `prefix` (unknown prefixes are ignored).
    pub fn unsubscribe(&self, prefix: &[u8]) -> Result<()> {
        subscribe_command(&self.socket, false, prefix)
    }
}

/// A publisher that also hands its subscribers' subscription changes to the application
/// (thesis §5.4.3): the front of a broker, linked by subscribers, whose subscriptions the
/// broker forwards to an [`XSubSocket`] linked to the publishers.
///
/// [`XPubSocket::recv_subscription`] returns each change it applied, per link: a
/// subscription on a link's first subscribe to a topic, an unsubscription on its last
/// unsubscribe or when the link closes. At most
/// [`a3m_core::socket::pub_sub::XPUB_QUEUE`] wait; while the queue is full the socket stops
/// applying subscription messages (its subscribers wait) until some are taken: nothing is
/// dropped. Readable ([`crate::Events::IN`]) while one waits. Publishes like a
/// [`PubSocket`].
///
/// ```
/// use std::time::Duration;
/// let node = a3m::NodeBuilder::new("n").bind("127.0.0.1:0".parse()?).start()?;
/// let front = node.xpub("front")?;
/// let subscriber = node.subscriber("sub")?;
/// subscriber.subscribe(b"a")?;
/// subscriber.link("n/front")?;
/// let s = front.recv_subscription(Some(Duration::from_secs(5)))?;
/// assert!(s.subscribe);
/// assert_eq!(s.topic, b"a");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct XPubSocket {
    socket: Socket,
}
socket_handle!(XPubSocket);
publisher_calls!(XPubSocket);

impl XPubSocket {
    /// Takes the next subscription change, waiting up to `timeout` (`None`: for ever;
    /// [`Error::Timeout`]).
    pub fn recv_subscription(&self, timeout: Option<Duration>) -> Result<Subscription> {
        let mut buf = Vec::new();
        self.socket.protocol_call(Events::IN, Some(timeout), |state, key| {
            state.layer.take_generated(key, &mut buf)
        })?;
        Subscription::from_bytes(&buf).ok_or_else(|| Error::Malformed("subscription".into()))
    }

    /// Like [`XPubSocket::recv_subscription`], failing with [`Error::WouldBlock`] instead
    /// of waiting.
    pub fn try_recv_subscription(&self) -> Result<Subscription> {
        let mut buf = Vec::new();
        self.socket.protocol_call(Events::IN, None, |state, key| {
            state.layer.take_generated(key, &mut buf)
        })?;
        Subscription::from_bytes(&buf).ok_or_else(|| Error::Malformed("subscription".into()))
    }
}

/// A subscriber whose application sends subscription messages (thesis §5.4.4): the back of
/// a broker, linked to the publishers. [`XSubSocket::send_subscription`] acts as
/// [`SubSocket::subscribe`] or [`SubSocket::unsubscribe`] (counted, so several downstream
/// subscribers of one topic make one upstream subscription, withdrawn with the last).
/// Receives like a [`SubSocket`].
///
/// ```
/// use std::time::Duration;
/// let node = a3m::NodeBuilder::new("n").bind("127.0.0.1:0".parse()?).start()?;
/// let publisher = node.publisher("pub")?;
/// let back = node.xsub("back")?;
/// back.send_subscription(&a3m::Subscription { subscribe: true, topic: b"t".to_vec() })?;
/// back.link("n/pub")?;
/// publisher.wait_for_subscribers(1, Duration::from_secs(5))?;
/// publisher.publish(b"t", b"hi")?;
/// assert_eq!(back.recv()?.payload, b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct XSubSocket {
    socket: Socket,
}
socket_handle!(XSubSocket);
subscriber_calls!(XSubSocket);

impl XSubSocket {
    /// Applies a subscription message (as an [`XPubSocket`] gave it) and forwards it to
    /// the linked publishers.
    pub fn send_subscription(&self, subscription: &Subscription) -> Result<()> {
        subscribe_command(&self.socket, subscription.subscribe, &subscription.topic)
    }
}

impl Node {
    /// Creates a publisher (see [`PubSocket`]).
    pub fn publisher(&self, tag: &str) -> Result<PubSocket> {
        Ok(PubSocket { socket: self.socket(tag, Pub::new())? })
    }

    /// Creates a subscriber (see [`SubSocket`]).
    pub fn subscriber(&self, tag: &str) -> Result<SubSocket> {
        Ok(SubSocket { socket: self.socket(tag, Sub::new())? })
    }

    /// Creates an XPub, a publisher that shows its subscriptions (see [`XPubSocket`]).
    pub fn xpub(&self, tag: &str) -> Result<XPubSocket> {
        Ok(XPubSocket { socket: self.socket(tag, Pub::xpub())? })
    }

    /// Creates an XSub, a subscriber that takes subscription messages (see
    /// [`XSubSocket`]).
    pub fn xsub(&self, tag: &str) -> Result<XSubSocket> {
        Ok(XSubSocket { socket: self.socket(tag, Sub::xsub())? })
    }
}
