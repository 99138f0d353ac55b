#pragma once

/// Happens-before annotations for ThreadSanitizer. Debian's CAF is not
/// instrumented, so TSan does not see that a mailbox hand-off orders the
/// publisher's writes before the subscriber's reads; these macros tell it.
/// They compile to nothing outside TSan builds.
#if defined(__SANITIZE_THREAD__)
#  define MYCELIUM_TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define MYCELIUM_TSAN 1
#  endif
#endif

#ifdef MYCELIUM_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#  define MYCELIUM_TSAN_RELEASE(addr)                                          \
    __tsan_release(const_cast<void*>(static_cast<const void*>(addr)))
#  define MYCELIUM_TSAN_ACQUIRE(addr)                                          \
    __tsan_acquire(const_cast<void*>(static_cast<const void*>(addr)))
#else
#  define MYCELIUM_TSAN_RELEASE(addr) static_cast<void>(addr)
#  define MYCELIUM_TSAN_ACQUIRE(addr) static_cast<void>(addr)
#endif
