// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file src/support/bytes_io.h
 * \brief In-memory byte streams: BytesInStream (read a buffer) and
 *        BytesOutStream (append to a std::string).
 */
#ifndef TVM_SUPPORT_BYTES_IO_H_
#define TVM_SUPPORT_BYTES_IO_H_

#include <tvm/ffi/error.h>
#include <tvm/ffi/string.h>
#include <tvm/support/io.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace tvm {
namespace support {

/*!
 * \brief Read-only stream over a contiguous byte buffer.
 *
 * Lvalue std::string / raw pointer sources are viewed, not copied: they must
 * outlive the stream.  Rvalue std::string and ffi::Bytes sources are kept
 * alive by the stream itself (ffi::Bytes is reference counted, so no copy).
 */
class BytesInStream : public Stream {
 public:
  BytesInStream(const void* data, size_t size)
      : data_(static_cast<const char*>(data)), size_(size) {}
  explicit BytesInStream(const std::string& data) : BytesInStream(data.data(), data.size()) {}
  explicit BytesInStream(std::string&& data) : owned_str_(std::move(data)) {
    data_ = owned_str_.data();
    size_ = owned_str_.size();
  }
  explicit BytesInStream(ffi::Bytes data) : owned_bytes_(std::move(data)) {
    data_ = owned_bytes_.data();
    size_ = owned_bytes_.size();
  }
  // The stream may point into its own members: no copy / move.
  BytesInStream(const BytesInStream&) = delete;
  BytesInStream& operator=(const BytesInStream&) = delete;

  using Stream::Read;
  using Stream::Write;

  size_t Read(void* ptr, size_t size) final {
    size_t n = std::min(size, size_ - pos_);
    if (n != 0) std::memcpy(ptr, data_ + pos_, n);
    pos_ += n;
    return n;
  }
  size_t Write(const void*, size_t) final {
    TVM_FFI_THROW(InternalError) << "BytesInStream is read-only";
    return 0;
  }

  /*! \brief Current read offset in bytes. */
  size_t Tell() const { return pos_; }
  /*! \brief Whether all bytes have been consumed. */
  bool AtEnd() const { return pos_ == size_; }

 private:
  std::string owned_str_;
  ffi::Bytes owned_bytes_;
  const char* data_{nullptr};
  size_t size_{0};
  size_t pos_{0};
};

/*!
 * \brief Write-only stream that appends to a caller-owned std::string.
 */
class BytesOutStream : public Stream {
 public:
  explicit BytesOutStream(std::string* out) : out_(out) {
    TVM_FFI_ICHECK(out_ != nullptr) << "BytesOutStream needs a target string";
  }

  using Stream::Read;
  using Stream::Write;

  size_t Write(const void* ptr, size_t size) final {
    if (size != 0) out_->append(static_cast<const char*>(ptr), size);
    return size;
  }
  size_t Read(void*, size_t) final {
    TVM_FFI_THROW(InternalError) << "BytesOutStream is write-only";
    return 0;
  }

 private:
  std::string* out_;
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_BYTES_IO_H_
