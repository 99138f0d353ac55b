# One interface target carries the project's warnings and sanitizer flags.
# Every Mycelium target links it PRIVATE-ly (it is not exported to users).

add_library(mycelium_build_flags INTERFACE)
target_compile_options(mycelium_build_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wno-unused-parameter)
if(MYCELIUM_WERROR)
  target_compile_options(mycelium_build_flags INTERFACE -Werror)
endif()

if(MYCELIUM_SANITIZE STREQUAL "address")
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
elseif(MYCELIUM_SANITIZE STREQUAL "thread")
  # -Wno-tsan: TSan does not model atomic_thread_fence. Our fences only order
  # the sleeping-flag handshake of the shm rings (ring_waiter, shm_channel,
  # shm_multiplexer); the frames themselves are published release/acquire.
  set(_san -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
elseif(NOT MYCELIUM_SANITIZE STREQUAL "")
  message(FATAL_ERROR "MYCELIUM_SANITIZE must be '', 'address' or 'thread', not '${MYCELIUM_SANITIZE}'")
endif()
# mycelium_sanitizer_env(<test>): runtime options for sanitizer builds.
function(mycelium_sanitizer_env test)
  if(MYCELIUM_SANITIZE STREQUAL "thread")
    set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT
      "TSAN_OPTIONS=halt_on_error=1 second_deadlock_stack=1 suppressions=${PROJECT_SOURCE_DIR}/tests/sanitizers/tsan.supp")
    if(NOT CAF_CORE_LIBRARY MATCHES "caf-tsan")
      message(WARNING "TSan build with an uninstrumented CAF (${CAF_CORE_LIBRARY}): "
                      "expect false race reports; use scripts/test.sh with SANITIZE=thread, "
                      "which builds CAF with TSan (scripts/build-caf-tsan.sh)")
    endif()
  elseif(MYCELIUM_SANITIZE STREQUAL "address")
    set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT
      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
      "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
      "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/sanitizers/lsan-caf.supp:print_suppressions=0")
  endif()
endfunction()

# mycelium_python_sanitizer_env(<test>): a test whose processes run Python
# with the sanitized extension (or embed CPython): an ASan build preloads
# the ASan runtime into /usr/bin/python3 and suppresses CPython's own
# leaks at exit (tests/sanitizers/lsan-python.supp).
function(mycelium_python_sanitizer_env test)
  if(MYCELIUM_SANITIZE STREQUAL "address")
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE asan OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libubsan.so
                    OUTPUT_VARIABLE ubsan OUTPUT_STRIP_TRAILING_WHITESPACE)
    set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT
      "LD_PRELOAD=${asan}:${ubsan}" "PYTHONMALLOC=malloc"
      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
      "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
      "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/sanitizers/lsan-python.supp:print_suppressions=0")
  endif()
endfunction()

if(_san)
  target_compile_options(mycelium_build_flags INTERFACE ${_san})
  target_link_options(mycelium_build_flags INTERFACE ${_san})
endif()
# Static libraries built with sanitizers need their users to link the
# sanitizer runtime: components add these as INTERFACE link options, which the
# installed package carries to consumer projects.
set(MYCELIUM_SANITIZER_LINK_OPTIONS ${_san})
