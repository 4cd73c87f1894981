// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file tvm/support/io.h
 * \brief Abstract binary stream used by TVM's runtime serialization code.
 *
 * A concrete stream only has to implement the two raw byte primitives
 * (Read / Write of `size` bytes).  Typed I/O (`Write(value)`, `Read(&value)`,
 * `WriteArray`, `ReadArray`) is layered on top through `Serializer<T>`, which
 * lives in <tvm/support/serializer.h>; that header is pulled in at the end of
 * this file so that including either header gives a fully usable `Stream`.
 *
 * Wire format: little-endian, fixed-width; see serializer.h for details.
 */
#ifndef TVM_SUPPORT_IO_H_
#define TVM_SUPPORT_IO_H_

#include <cstddef>
#include <cstdint>

namespace tvm {
namespace support {

/*!
 * \brief Typed (de)serialization rule for T, specialised in serializer.h and by users.
 *
 * A specialisation provides
 *   static constexpr bool enabled = true;
 *   static void Write(Stream* strm, const T& value);
 *   static bool Read(Stream* strm, T* out);   // false on short read / malformed input
 * The second parameter only exists to allow SFINAE-constrained partial specialisations.
 */
template <typename T, typename Enable = void>
struct Serializer;

/*! \brief Binary stream interface. */
class Stream {
 public:
  virtual ~Stream() = default;
  /*!
   * \brief Read up to `size` raw bytes into `ptr`.
   * \return The number of bytes actually read (0 at end of stream).
   */
  virtual size_t Read(void* ptr, size_t size) = 0;
  /*!
   * \brief Write `size` raw bytes from `ptr`.
   * \return The number of bytes written.
   */
  virtual size_t Write(const void* ptr, size_t size) = 0;

  /*! \brief Serialize one value using Serializer<T>. */
  template <typename T>
  void Write(const T& value);
  /*! \brief Deserialize one value using Serializer<T>; returns false on failure. */
  template <typename T>
  bool Read(T* out);
  /*! \brief Serialize `num_elems` consecutive values (no length prefix). */
  template <typename T>
  void WriteArray(const T* data, size_t num_elems);
  /*! \brief Deserialize `num_elems` consecutive values (no length prefix). */
  template <typename T>
  bool ReadArray(T* data, size_t num_elems);
};

}  // namespace support
}  // namespace tvm

// Defines Serializer<...> and the template members of Stream declared above.
#include <tvm/support/serializer.h>

#endif  // TVM_SUPPORT_IO_H_
