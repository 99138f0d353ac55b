#pragma once

namespace mycelium::detail {

/// Tells the CPU that the calling thread is in a spin-wait loop: on x86 a
/// `pause` (frees the sibling hyper-thread, saves power, avoids the memory
/// order mis-speculation penalty at loop exit), on ARM a `yield`, elsewhere
/// a compiler barrier only. Every spin loop of the project calls this one
/// function instead of an architecture intrinsic.
///
/// Thread-safety: none needed; touches no memory.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

} // namespace mycelium::detail
