//! What every typed socket handle ([`crate::Req`], [`crate::Publisher`], ...) shares: the
//! link, poll, option and close calls of the generic [`crate::Socket`] it wraps, without its
//! raw `send`/`recv` (each handle offers the ones that make sense for its type).

/// Gives the handle type `$name` (a struct with a `socket: Socket` field) the calls every
/// socket has, forwarding to [`crate::Socket`].
macro_rules! socket_handle {
    ($name:ident) => {
        impl $name {
            /// The socket's global name (`node/tag`).
            pub fn id(&self) -> &$crate::SocketId {
                self.socket.id()
            }

            /// Starts linking to `peer`; see [`crate::Socket::link`].
            pub fn link(&self, peer: impl $crate::IntoSocketId) -> $crate::Result<()> {
                self.socket.link(peer)
            }

            /// Unlinks from `peer`; see [`crate::Socket::unlink`]. Refused with
            /// [`crate::Error::Refused`] while a reply is awaited or owed on that link.
            pub fn unlink(&self, peer: impl $crate::IntoSocketId) -> $crate::Result<()> {
                self.socket.unlink(peer)
            }

            /// Unlinks from `peer` even if a reply is awaited or owed on that link; see
            /// [`crate::Socket::force_unlink`].
            pub fn force_unlink(&self, peer: impl $crate::IntoSocketId) -> $crate::Result<()> {
                self.socket.force_unlink(peer)
            }

            /// Waits for an established link; see [`crate::Socket::wait_for_link`].
            pub fn wait_for_link(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> $crate::Result<$crate::SocketId> {
                self.socket.wait_for_link(timeout)
            }

            /// Waits until the link with `peer` is established; see
            /// [`crate::Socket::wait_for_link_to`].
            pub fn wait_for_link_to(
                &self,
                peer: impl $crate::IntoSocketId,
                timeout: Option<std::time::Duration>,
            ) -> $crate::Result<()> {
                self.socket.wait_for_link_to(peer, timeout)
            }

            /// The socket's links and their states; see [`crate::Socket::links`].
            pub fn links(&self) -> Vec<$crate::LinkInfo> {
                self.socket.links()
            }

            /// The next link event; see [`crate::Socket::next_event`].
            pub fn next_event(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> $crate::Result<$crate::LinkEvent> {
                self.socket.next_event(timeout)
            }

            /// Waits for readiness; see [`crate::Socket::poll`].
            pub fn poll(
                &self,
                interest: $crate::Events,
                timeout: Option<std::time::Duration>,
            ) -> $crate::Result<$crate::Events> {
                self.socket.poll(interest, timeout)
            }

            /// The readiness now; see [`crate::Socket::readiness`].
            pub fn readiness(&self) -> $crate::Events {
                self.socket.readiness()
            }

            /// Open, closing or closed; see [`crate::Socket::state`].
            pub fn state(&self) -> $crate::Lifecycle {
                self.socket.state()
            }

            /// The socket's options; see [`crate::Socket::options`].
            pub fn options(&self) -> $crate::Result<$crate::SocketOptions> {
                self.socket.options()
            }

            /// Replaces the socket's options; see [`crate::Socket::set_options`].
            pub fn set_options(&self, options: $crate::SocketOptions) -> $crate::Result<()> {
                self.socket.set_options(options)
            }

            /// Closes the socket; see [`crate::Socket::close`].
            pub fn close(
                &self,
                timeout: std::time::Duration,
            ) -> $crate::Result<$crate::SocketCloseReport> {
                self.socket.close(timeout)
            }

            /// The generic socket under this handle (for a [`crate::Poller`], or to see the
            /// messages as the encoded [`crate::core::socket::multipart`] bytes they are).
            pub fn as_socket(&self) -> &$crate::Socket {
                &self.socket
            }
        }
    };
}

pub(crate) use socket_handle;
