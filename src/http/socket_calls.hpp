// Socket system calls without glibc's cancellation bracket. send(), recv() and their
// kin are pthread cancellation points: in a multi-threaded process glibc wraps each in two
// atomic updates of the thread's cancellation state (a single-threaded one, like an nginx
// worker, skips them). Switchboard never cancels a thread, and syscall() is not a
// cancellation point, so the data path calls the kernel through these: ~60 instructions
// and two locked operations less per call, four calls per proxied request. Same results
// and errno as the libc functions.
#pragma once

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

namespace sb::http::sys {

inline ssize_t recv(int fd, void* data, std::size_t size, int flags) {
  return ::syscall(SYS_recvfrom, fd, data, size, flags, nullptr, nullptr);
}
inline ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  return ::syscall(SYS_recvmsg, fd, msg, flags);
}
inline ssize_t send(int fd, const void* data, std::size_t size, int flags) {
  return ::syscall(SYS_sendto, fd, data, size, flags, nullptr, 0);
}
inline ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  return ::syscall(SYS_sendmsg, fd, msg, flags);
}

}  // namespace sb::http::sys
