#pragma once

/// Happens-before annotations for ThreadSanitizer: the bus marks the hand-off
/// of a payload to subscriber mailboxes. With a TSan-built CAF (what
/// scripts/test.sh uses) CAF's own atomics already order it and these are
/// redundant; they keep payload races visible-but-correct if the bus is ever
/// run against an uninstrumented CAF. Nothing outside TSan builds.
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
