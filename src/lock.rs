//! Locks that outlive a panic: the one place that decides what a poisoned lock means.
//!
//! A panic while a std lock is held poisons it, and every later `lock()` returns an error. What
//! the exporter guards is caches, log-once state, the next value to serve and handles it only
//! reads through, each changed by a single assignment or insert, so a panicking holder cannot
//! leave it half-updated in a way a later user would misread; and one panicking scrape, probe or
//! request must not fail every later one. So a poisoned lock is used as it is, here, instead of
//! at each of the two dozen places that take one.

use std::sync::{
    Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
};

/// [`Mutex`] without the poisoning.
pub(crate) trait MutexUnpoisoned<T: ?Sized> {
    /// Blocks until the lock is ours.
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;
    /// The lock if nobody holds it, else `None`.
    fn try_lock_unpoisoned(&self) -> Option<MutexGuard<'_, T>>;
    /// The value, through the exclusive borrow (no locking needed).
    fn get_mut_unpoisoned(&mut self) -> &mut T;
}

impl<T: ?Sized> MutexUnpoisoned<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock_unpoisoned(&self) -> Option<MutexGuard<'_, T>> {
        match self.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn get_mut_unpoisoned(&mut self) -> &mut T {
        self.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`RwLock`] without the poisoning.
pub(crate) trait RwLockUnpoisoned<T: ?Sized> {
    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T>;
    fn write_unpoisoned(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLockUnpoisoned<T> for RwLock<T> {
    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_unpoisoned(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Poisons `mutex` by panicking while holding it.
    fn poison<T: Send>(mutex: &Mutex<T>) {
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let _guard = mutex.lock();
                    panic!("poisoning on purpose");
                })
                .join();
        });
    }

    #[test]
    fn a_poisoned_mutex_is_still_usable() {
        let mutex = Mutex::new(1);
        poison(&mutex);
        assert!(mutex.is_poisoned());
        *mutex.lock_unpoisoned() += 1;
        assert_eq!(*mutex.lock_unpoisoned(), 2);
        assert_eq!(mutex.try_lock_unpoisoned().map(|value| *value), Some(2));
        let held = mutex.lock_unpoisoned();
        assert!(mutex.try_lock_unpoisoned().is_none(), "held: would block");
        drop(held);
        let mut mutex = mutex;
        *mutex.get_mut_unpoisoned() = 5;
        assert_eq!(*mutex.lock_unpoisoned(), 5);
    }

    #[test]
    fn a_poisoned_rwlock_is_still_usable() {
        let lock = RwLock::new(1);
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let _guard = lock.write();
                    panic!("poisoning on purpose");
                })
                .join();
        });
        assert!(lock.is_poisoned());
        *lock.write_unpoisoned() = 3;
        assert_eq!(*lock.read_unpoisoned(), 3);
    }
}
