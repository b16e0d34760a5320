//! Timers: link retries and close lingers.

use crate::id::LinkIncarnation;
use crate::time::Instant;

use super::SocketLayer;
use super::shared::{Sink, local_meta};

/// The timer entry of a socket's close linger (incarnations start at 1).
pub(super) const LINGER: LinkIncarnation = LinkIncarnation(0);

impl SocketLayer {
    /// Runs what is due at `now`: link retries and close lingers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, key, inc)) = self.shared.timers.first() {
            if at > now {
                break;
            }
            self.shared.timers.pop_first();
            if inc == LINGER {
                if self.socket(key).is_some_and(|s| s.closing) {
                    self.abort_links(key);
                }
                continue;
            }
            let Some((s, shared)) = self.parts(key) else { continue };
            if let Some(link) = s.links.get_mut(&inc) {
                let me = local_meta(&*s.protocol);
                let mut sink = Sink { tag: &s.id.tag, shared };
                link.on_timer(now, &s.options.retry, &me, &mut sink);
            }
            self.after(key);
        }
    }

    /// When [`SocketLayer::handle_timeout`] should run next (it may find nothing due).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.timers.first().map(|&(at, _, _)| at)
    }
}
