// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file src/support/base64.h
 * \brief Streaming base64 (RFC 4648 standard alphabet, '=' padding) adapters.
 *
 * Base64OutStream encodes everything written to it into a sink stream;
 * call Finish() to emit the final (padded) quartet.  Base64InStream decodes
 * from a source stream; whitespace is skipped, decoding stops at the first
 * character outside the alphabet ('=' padding, a closing quote, ...) or at
 * the end of the source.  Used by tensor JSON (de)serialization
 * (`__data_to_json__` / `__data_from_json__`) and the disco debug protocol.
 */
#ifndef TVM_SUPPORT_BASE64_H_
#define TVM_SUPPORT_BASE64_H_

#include <tvm/ffi/error.h>
#include <tvm/support/io.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tvm {
namespace support {

namespace base64 {
/*! \brief Encoding alphabet. */
inline constexpr char kEncodeTable[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/*! \brief Value of a base64 character, -1 if not part of the alphabet. */
inline int DecodeChar(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
inline bool IsSpace(unsigned char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\v';
}
}  // namespace base64

/*! \brief Write-only stream that base64-encodes into another stream. */
class Base64OutStream : public Stream {
 public:
  explicit Base64OutStream(Stream* sink) : sink_(sink) {}
  ~Base64OutStream() override {
    try {
      Finish();
    } catch (...) {
    }
  }

  using Stream::Read;
  using Stream::Write;

  size_t Write(const void* ptr, size_t size) final {
    const unsigned char* p = static_cast<const unsigned char*>(ptr);
    for (size_t i = 0; i < size; ++i) {
      pending_[npending_++] = p[i];
      if (npending_ == 3) EncodePending();
    }
    return size;
  }
  size_t Read(void*, size_t) final {
    TVM_FFI_THROW(InternalError) << "Base64OutStream is write-only";
    return 0;
  }

  /*! \brief Encode the remaining 1-2 bytes (with '=' padding) and flush to the sink. */
  void Finish() {
    if (npending_ != 0) EncodePending();
    Flush();
  }

 private:
  void EncodePending() {
    uint32_t v = static_cast<uint32_t>(pending_[0]) << 16;
    if (npending_ > 1) v |= static_cast<uint32_t>(pending_[1]) << 8;
    if (npending_ > 2) v |= static_cast<uint32_t>(pending_[2]);
    char quad[4];
    quad[0] = base64::kEncodeTable[(v >> 18) & 63];
    quad[1] = base64::kEncodeTable[(v >> 12) & 63];
    quad[2] = npending_ > 1 ? base64::kEncodeTable[(v >> 6) & 63] : '=';
    quad[3] = npending_ > 2 ? base64::kEncodeTable[v & 63] : '=';
    npending_ = 0;
    if (nout_ + 4 > sizeof(out_)) Flush();
    std::memcpy(out_ + nout_, quad, 4);
    nout_ += 4;
  }
  void Flush() {
    if (nout_ != 0) sink_->Write(static_cast<const void*>(out_), nout_);
    nout_ = 0;
  }

  Stream* sink_;
  unsigned char pending_[3];
  size_t npending_{0};
  char out_[1024];
  size_t nout_{0};
};

/*!
 * \brief Read-only stream that base64-decodes from another stream.
 * \note The decoder reads its source ahead in chunks; do not interleave direct
 *       reads of the source with reads of this stream.
 */
class Base64InStream : public Stream {
 public:
  explicit Base64InStream(Stream* source) : source_(source) {}

  using Stream::Read;
  using Stream::Write;

  /*! \brief Skip leading whitespace; call once before the first Read (optional). */
  void InitPosition() {
    int c;
    while ((c = PeekChar()) >= 0 && base64::IsSpace(static_cast<unsigned char>(c))) ++in_pos_;
  }

  size_t Read(void* ptr, size_t size) final {
    unsigned char* out = static_cast<unsigned char*>(ptr);
    size_t n = 0;
    while (n < size) {
      if (dec_pos_ == dec_len_ && !DecodeQuartet()) break;
      size_t take = dec_len_ - dec_pos_;
      if (take > size - n) take = size - n;
      std::memcpy(out + n, decoded_ + dec_pos_, take);
      dec_pos_ += take;
      n += take;
    }
    return n;
  }
  size_t Write(const void*, size_t) final {
    TVM_FFI_THROW(InternalError) << "Base64InStream is read-only";
    return 0;
  }

 private:
  /*! \brief Next raw source character without consuming it, -1 at end. */
  int PeekChar() {
    if (in_pos_ == in_len_) {
      if (eof_) return -1;
      in_len_ = source_->Read(in_, sizeof(in_));
      in_pos_ = 0;
      if (in_len_ == 0) {
        eof_ = true;
        return -1;
      }
    }
    return in_[in_pos_];
  }
  /*! \brief Decode the next group of up to 4 characters; false when input is exhausted. */
  bool DecodeQuartet() {
    if (finished_) return false;
    uint32_t v = 0;
    int nchar = 0;
    while (nchar < 4) {
      int c = PeekChar();
      if (c < 0) break;
      if (base64::IsSpace(static_cast<unsigned char>(c))) {
        ++in_pos_;
        continue;
      }
      int d = base64::DecodeChar(static_cast<unsigned char>(c));
      if (d < 0) break;  // '=' padding or any other terminator (e.g. a closing quote)
      ++in_pos_;
      v = (v << 6) | static_cast<uint32_t>(d);
      ++nchar;
    }
    if (nchar < 4) finished_ = true;  // padding / terminator / end of input: last group
    TVM_FFI_ICHECK(nchar != 1) << "Truncated base64 input";
    if (nchar == 0) return false;
    v <<= 6 * (4 - nchar);
    dec_len_ = static_cast<size_t>(nchar - 1);  // 2 chars -> 1 byte, 3 -> 2, 4 -> 3
    decoded_[0] = static_cast<unsigned char>(v >> 16);
    decoded_[1] = static_cast<unsigned char>(v >> 8);
    decoded_[2] = static_cast<unsigned char>(v);
    dec_pos_ = 0;
    return true;
  }

  Stream* source_;
  unsigned char in_[1024];
  size_t in_len_{0};
  size_t in_pos_{0};
  bool eof_{false};
  bool finished_{false};
  unsigned char decoded_[3];
  size_t dec_len_{0};
  size_t dec_pos_{0};
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_BASE64_H_
