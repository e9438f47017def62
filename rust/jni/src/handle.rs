//! Native state as a `jlong` handle, and the crate's other `unsafe`.
//!
//! A handle is `Box::into_raw` of a [`Tagged`] value: a per-type tag first, then the value. Java
//! owns its lifetime: it gets the handle from an `open` entry point and gives it back exactly once
//! to the matching `close`; between the two, any number of threads may use it (the values are
//! `Sync`). The tag is checked on every use, so a handle of the wrong kind or a zero handle is an
//! error, not undefined behaviour; it is cleared when the handle is released.

use jni::sys::jlong;

use crate::error::BridgeError;

/// A kind of native state that crosses JNI as a handle.
pub(crate) trait HandleKind: Send + Sync + 'static {
    /// Distinct per kind, never 0.
    const TAG: u64;
    /// For error messages.
    const NAME: &'static str;
}

#[repr(C)]
struct Tagged<T> {
    tag: u64,
    value: T,
}

/// Moves `value` to the heap and returns its handle (never 0).
pub(crate) fn into_handle<T: HandleKind>(value: T) -> jlong {
    Box::into_raw(Box::new(Tagged { tag: T::TAG, value })) as jlong
}

fn check<T: HandleKind>(handle: jlong) -> Result<*mut Tagged<T>, BridgeError> {
    let invalid = || BridgeError::InvalidHandle { kind: T::NAME, handle };
    if handle == 0 || !(handle as usize).is_multiple_of(std::mem::align_of::<Tagged<T>>()) {
        return Err(invalid());
    }
    let ptr = handle as *mut Tagged<T>;
    // SAFETY: a non-zero handle comes from `into_handle` of some kind (every handle kind is a
    // `Tagged<_>` with the tag first, `repr(C)`), and Java does not pass it after `release`.
    let tag = unsafe { std::ptr::addr_of!((*ptr).tag).read() };
    if tag != T::TAG {
        return Err(invalid());
    }
    Ok(ptr)
}

/// The value behind a handle.
///
/// # Safety
/// `handle` is 0 or came from [`into_handle`] and has not been passed to [`release`]; the
/// caller does not release it while the returned reference lives (Java guarantees both: see
/// `CalvingRemoteStorageManager` and `NativeInputStream`).
pub(crate) unsafe fn borrow<'a, T: HandleKind>(handle: jlong) -> Result<&'a T, BridgeError> {
    let ptr = check::<T>(handle)?;
    // SAFETY: checked above; valid until released, per this function's contract.
    Ok(unsafe { &(*ptr).value })
}

/// Takes a handle's value back; the handle is freed.
///
/// # Safety
/// As [`borrow`]; after this call Java never passes `handle` again.
pub(crate) unsafe fn release<T: HandleKind>(handle: jlong) -> Result<T, BridgeError> {
    let ptr = check::<T>(handle)?;
    // SAFETY: made by `Box::into_raw` in `into_handle`, released once. The tag is cleared first
    // so that a (buggy) second release of the same handle is more likely to be refused.
    let tagged = unsafe {
        (*ptr).tag = 0;
        Box::from_raw(ptr)
    };
    Ok(tagged.value)
}

/// Bytes as JNI's `jbyte`s, for copying into a Java `byte[]`.
pub(crate) fn as_jbytes(bytes: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment; only the interpretation differs.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct A(Arc<AtomicUsize>);
    impl HandleKind for A {
        const TAG: u64 = 0xA;
        const NAME: &'static str = "A";
    }
    impl Drop for A {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    struct B(#[allow(dead_code)] u64);
    impl HandleKind for B {
        const TAG: u64 = 0xB;
        const NAME: &'static str = "B";
    }

    #[test]
    fn handles_round_trip_and_reject_the_wrong_kind() {
        let drops = Arc::new(AtomicUsize::new(0));
        let h = into_handle(A(drops.clone()));
        assert_ne!(h, 0);
        unsafe {
            assert!(borrow::<A>(h).is_ok());
            assert!(matches!(borrow::<B>(h), Err(BridgeError::InvalidHandle { kind: "B", .. })));
            assert!(matches!(borrow::<A>(0), Err(BridgeError::InvalidHandle { .. })));
            assert!(matches!(borrow::<A>(h + 1), Err(BridgeError::InvalidHandle { .. })));
            drop(release::<A>(h).unwrap());
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(as_jbytes(&[0, 127, 128, 255]), &[0, 127, -128, -1]);
    }
}
