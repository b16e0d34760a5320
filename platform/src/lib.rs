//! a3m-platform: the operating-system event sources a3m's std runtime waits on.
//!
//! * [`reactor`]: one small trait over epoll + eventfd + timerfd (Linux) and kqueue with
//!   `EVFILT_USER` / `EVFILT_TIMER` (FreeBSD, macOS).
//! * [`udp`]: non-blocking UDP sockets with batched receive and send (`recvmmsg`/`sendmmsg`
//!   on Linux).
//! * [`parker`]: the thread parker that implements the core's waiting for std threads.

pub mod netwatch;
pub mod parker;
pub mod reactor;
pub mod udp;
