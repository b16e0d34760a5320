//! The route cache: where the last DATA messages of a few streams went, so the next one of
//! the same stream is routed without decoding its tags or looking up its socket and link.
//! Several entries, because streams interleave: a node with ten subscribers of one publisher
//! gets their messages in turn.

use crate::id::{LinkIncarnation, NodeId, TagId};
use crate::wire::message::{self, Body, Message};

use super::SocketKey;

/// How many streams the cache remembers.
pub(super) const ROUTE_CACHE_ENTRIES: usize = 16;

/// The routes of the last few streams (see [`Shared::routes`]), tried most recent first.
///
/// [`Shared::routes`]: super::shared::Shared::routes
#[derive(Debug, Default)]
pub(super) struct RouteCaches {
    entries: [Option<RouteCache>; ROUTE_CACHE_ENTRIES],
    /// The entry that matched last (tried first).
    last: usize,
    /// The entry the next insertion replaces (round robin).
    victim: usize,
}

impl RouteCaches {
    /// Forgets every route (a link or socket changed).
    pub(super) fn clear(&mut self) {
        if self.entries.iter().any(Option::is_some) {
            self.entries = Default::default();
        }
    }

    /// The route `i`, if set.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<&RouteCache> {
        self.entries.get(i)?.as_ref()
    }

    /// Remembers `route`, replacing the oldest entry.
    pub(super) fn insert(&mut self, route: Option<RouteCache>) {
        let Some(route) = route else { return };
        if let Some(same) =
            self.entries.iter_mut().flatten().find(|r| r.key == route.key && r.link == route.link)
        {
            *same = route;
            return;
        }
        self.entries[self.victim] = Some(route);
        self.last = self.victim;
        self.victim = (self.victim + 1) % ROUTE_CACHE_ENTRIES;
    }

    /// The index of the first route `hit` accepts and what it made of it: the last matched
    /// route first, then the one after it (streams that take turns, such as a publisher's
    /// subscribers, were inserted in the order they take them), then all.
    #[inline]
    pub(super) fn find<T>(
        &mut self,
        mut hit: impl FnMut(&RouteCache) -> Option<T>,
    ) -> Option<(usize, T)> {
        let next = (self.last + 1) % ROUTE_CACHE_ENTRIES;
        let found =
            [self.last, next].into_iter().find_map(|i| Some((i, hit(self.get(i)?)?))).or_else(
                || self.entries.iter().enumerate().find_map(|(i, r)| Some((i, hit(r.as_ref()?)?))),
            )?;
        self.last = found.0;
        Some(found)
    }
}

/// One stream's route.
#[derive(Debug)]
pub(super) struct RouteCache {
    pub(super) from: NodeId,
    pub(super) src: TagId,
    pub(super) dst: TagId,
    /// What every DATA message of the route starts with ([`message::data_prefix`]; a
    /// DATA_MORE differs only in its kind's low bit): a payload that starts so is routed
    /// without decoding its tags.
    pub(super) prefix: [u8; message::DATA_PREFIX_MAX + 1],
    pub(super) prefix_len: usize,
    /// The sender's incarnation of the link, named in its messages.
    pub(super) their_link: LinkIncarnation,
    pub(super) key: SocketKey,
    pub(super) link: LinkIncarnation,
}

impl RouteCache {
    pub(super) fn new(
        from: &NodeId,
        msg: &Message<'_>,
        key: SocketKey,
        link: LinkIncarnation,
    ) -> Option<Self> {
        let mut prefix = [0; message::DATA_PREFIX_MAX + 1];
        let prefix_len = message::data_prefix(msg.src_tag, msg.dst_tag, msg.link, &mut prefix)?;
        Some(Self {
            from: from.clone(),
            src: TagId::new(msg.src_tag).ok()?,
            dst: TagId::new(msg.dst_tag).ok()?,
            prefix,
            prefix_len,
            their_link: msg.link,
            key,
            link,
        })
    }

    #[inline]
    pub(super) fn matches(&self, from: &NodeId, msg: &Message<'_>) -> bool {
        self.src.as_str() == msg.src_tag && self.dst.as_str() == msg.dst_tag && self.from == *from
    }

    /// The rest of `bytes` after the route's DATA prefix, if `bytes` came from `from` and
    /// starts with it.
    #[inline]
    pub(super) fn tail<'a>(&self, from: &NodeId, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let rest = bytes.strip_prefix(&self.prefix[..self.prefix_len])?;
        (self.from == *from).then_some(rest)
    }

    /// The body of `bytes` if it is a DATA_MORE of this route from `from` (or a DATA: the
    /// general case of [`RouteCache::tail`]).
    #[cold]
    pub(super) fn fragment<'a>(&self, from: &NodeId, bytes: &'a [u8]) -> Option<Body<'a>> {
        let body = message::decode_routed_data(&self.prefix[..self.prefix_len], bytes)?;
        (self.from == *from).then_some(body)
    }
}
