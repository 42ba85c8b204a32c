# One switch picks the sanitizers: SB_SANITIZE=address,undefined or SB_SANITIZE=thread.
if(SB_SANITIZE)
  if(SB_SANITIZE MATCHES "thread" AND SB_SANITIZE MATCHES "address")
    message(FATAL_ERROR "SB_SANITIZE: thread and address cannot be combined")
  endif()
  add_compile_options(-fsanitize=${SB_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${SB_SANITIZE})
  if(SB_SANITIZE MATCHES "thread")
    # GCC warns (-Wtsan) that TSan does not model Asio's atomic_thread_fence; with warnings
    # as errors that stops the build. The fences sit next to atomics TSan does see.
    add_compile_options(-Wno-tsan)
  endif()
endif()
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
  add_compile_definitions(_GLIBCXX_ASSERTIONS)
endif()
