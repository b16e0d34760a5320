//! The lock and atomics the core uses, swapped for loom's under `cfg(loom)`.
//!
//! Code in the core takes its `Mutex` and atomics from here, never from `spin` or
//! `core::sync` directly, so the loom models in `core/tests/loom_*.rs` check the real code.
//! The lock is a spin lock on `no_std`, `parking_lot`'s with the `std` feature (a spin lock
//! would burn a core while a preempted holder sleeps).

// Cortex-M3/M4 have no 64-bit atomics.
#[cfg(all(not(loom), target_has_atomic = "64"))]
pub use core::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

/// A mutual-exclusion lock whose `lock` returns the guard directly (no poisoning).
pub struct Mutex<T: ?Sized> {
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(all(not(loom), feature = "std"))]
    inner: parking_lot::Mutex<T>,
    #[cfg(all(not(loom), not(feature = "std")))]
    inner: spin::Mutex<T>,
}

/// The guard [`Mutex::lock`] returns; the lock is released when it drops.
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
/// The guard [`Mutex::lock`] returns; the lock is released when it drops.
#[cfg(all(not(loom), feature = "std"))]
pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
/// The guard [`Mutex::lock`] returns; the lock is released when it drops.
#[cfg(all(not(loom), not(feature = "std")))]
pub type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        #[cfg(feature = "std")]
        let inner = parking_lot::Mutex::new(value);
        #[cfg(not(feature = "std"))]
        let inner = spin::Mutex::new(value);
        Self { inner }
    }

    /// A new unlocked mutex holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self { inner: loom::sync::Mutex::new(value) }
    }

    /// Consumes the mutex and returns its value.
    pub fn into_inner(self) -> T {
        #[cfg(loom)]
        return self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        #[cfg(not(loom))]
        return self.inner.into_inner();
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, spinning or sleeping until the lock is free.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(loom)]
        return self.inner.lock().unwrap_or_else(|e| e.into_inner());
        #[cfg(not(loom))]
        return self.inner.lock();
    }

    /// Locks if the lock is free right now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(loom)]
        return self.inner.try_lock().ok();
        #[cfg(not(loom))]
        return self.inner.try_lock();
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Mutex { .. }")
    }
}
