//! The application's side channel to a socket's protocol: commands
//! ([`super::Protocol::on_command`]) and the messages a protocol generates for the
//! application ([`super::Protocol::take_generated`]).

use alloc::vec::Vec;

use super::{LinkSet, SocketError, SocketKey, SocketLayer};

impl SocketLayer {
    /// Gives the socket's protocol a command from the application (e.g. a subscriber's
    /// subscribe, see [`super::pub_sub`]); its answer, if any, is left in `reply`. The
    /// control messages it queues leave when the socket settles, as after any operation.
    /// [`SocketError::Refused`] with the protocol's reason, [`SocketError::Closed`] on a
    /// closing socket.
    pub fn command(
        &mut self,
        key: SocketKey,
        command: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if s.closing {
            return Err(SocketError::Closed);
        }
        reply.clear();
        let result =
            s.protocol.on_command(&LinkSet::new(&s.links), command, reply, &mut shared.control);
        // Its readiness may have changed (a publisher's subscribers, a subscriber's refusal).
        s.mark_ready(key, shared);
        self.after(key);
        result.map_err(SocketError::Refused)
    }

    /// Takes the next message the socket's protocol generated for the application (an
    /// xpub's subscription messages) into `out`. Never blocks: [`SocketError::WouldBlock`]
    /// when there is none (wait for [`crate::poll::Events::IN`]).
    pub fn take_generated(&mut self, key: SocketKey, out: &mut Vec<u8>) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if !s.protocol.take_generated(out, &mut shared.control) {
            return Err(SocketError::WouldBlock);
        }
        s.mark_ready(key, shared);
        self.after(key);
        Ok(())
    }
}
