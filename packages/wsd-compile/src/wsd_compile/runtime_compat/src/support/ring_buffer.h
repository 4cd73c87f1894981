// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file src/support/ring_buffer.h
 * \brief Growable FIFO byte ring buffer used by the RPC endpoint and disco queues.
 */
#ifndef TVM_SUPPORT_RING_BUFFER_H_
#define TVM_SUPPORT_RING_BUFFER_H_

#include <tvm/ffi/error.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

namespace tvm {
namespace support {

class RingBuffer {
 public:
  /*! \brief Initial capacity in bytes. */
  static constexpr size_t kInitCapacity = 128;

  RingBuffer() : ring_(kInitCapacity) {}

  /*! \brief Number of bytes currently stored. */
  size_t bytes_available() const { return size_; }
  /*! \brief Current capacity in bytes. */
  size_t capacity() const { return ring_.size(); }

  /*!
   * \brief Make room for at least `n` stored bytes (content is preserved).
   *        Also gives memory back when the buffer is far larger than needed.
   */
  void Reserve(size_t n) {
    if (n > ring_.size()) {
      Resize(std::max(n, ring_.size() * 2));
    } else if (n < ring_.size() / 4 && ring_.size() > kShrinkThreshold && size_ <= n) {
      Resize(std::max(n * 2, kInitCapacity));
    }
  }

  /*! \brief Pop exactly `size` bytes into `data`; they must be available. */
  void Read(void* data, size_t size) {
    TVM_FFI_ICHECK_LE(size, size_) << "RingBuffer: reading more bytes than available";
    char* out = static_cast<char*>(data);
    size_t first = std::min(size, ring_.size() - head_);
    std::memcpy(out, ring_.data() + head_, first);
    std::memcpy(out + first, ring_.data(), size - first);
    Consume(size);
  }

  /*! \brief Push `size` bytes, growing the buffer when needed. */
  void Write(const void* data, size_t size) {
    if (size == 0) return;
    EnsureFree(size);
    const char* in = static_cast<const char*>(data);
    size_t tail = (head_ + size_) % ring_.size();
    size_t first = std::min(size, ring_.size() - tail);
    std::memcpy(ring_.data() + tail, in, first);
    std::memcpy(ring_.data(), in + first, size - first);
    size_ += size;
  }

  /*!
   * \brief Hand up to `max_nbytes` stored bytes (one contiguous chunk) to
   *        `fsend(const void* data, size_t size) -> size_t` and pop as many
   *        bytes as it reports consumed.
   * \return The number of bytes consumed.
   */
  template <typename FSend>
  size_t ReadWithCallback(FSend fsend, size_t max_nbytes) {
    size_t chunk = std::min({max_nbytes, size_, ring_.size() - head_});
    if (chunk == 0) return 0;
    size_t n = fsend(static_cast<const void*>(ring_.data() + head_), chunk);
    TVM_FFI_ICHECK_LE(n, chunk) << "RingBuffer: callback consumed more bytes than offered";
    Consume(n);
    return n;
  }

  /*!
   * \brief Offer one contiguous free region of up to `max_nbytes` bytes to
   *        `frecv(void* data, size_t size) -> size_t` and append as many bytes
   *        as it reports produced.
   * \return The number of bytes appended.
   */
  template <typename FRecv>
  size_t WriteWithCallback(FRecv frecv, size_t max_nbytes) {
    if (max_nbytes == 0) return 0;
    EnsureFree(max_nbytes);
    size_t tail = (head_ + size_) % ring_.size();
    size_t contiguous = tail >= head_ && size_ != ring_.size() ? ring_.size() - tail : head_ - tail;
    size_t chunk = std::min(max_nbytes, contiguous);
    size_t n = frecv(static_cast<void*>(ring_.data() + tail), chunk);
    TVM_FFI_ICHECK_LE(n, chunk) << "RingBuffer: callback produced more bytes than offered";
    size_ += n;
    return n;
  }

 private:
  static constexpr size_t kShrinkThreshold = 1 << 20;

  void EnsureFree(size_t extra) {
    if (size_ + extra > ring_.size()) Resize(std::max(size_ + extra, ring_.size() * 2));
  }

  void Consume(size_t n) {
    size_ -= n;
    head_ = size_ == 0 ? 0 : (head_ + n) % ring_.size();
  }

  /*! \brief Re-layout into a buffer of `new_cap` bytes with the data starting at 0. */
  void Resize(size_t new_cap) {
    std::vector<char> next(new_cap);
    size_t first = std::min(size_, ring_.size() - head_);
    std::memcpy(next.data(), ring_.data() + head_, first);
    std::memcpy(next.data() + first, ring_.data(), size_ - first);
    ring_.swap(next);
    head_ = 0;
  }

  std::vector<char> ring_;
  size_t head_{0};  // index of the oldest byte
  size_t size_{0};  // number of stored bytes
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_RING_BUFFER_H_
