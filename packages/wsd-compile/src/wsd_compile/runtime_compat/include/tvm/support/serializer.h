// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file tvm/support/serializer.h
 * \brief Serializer<T> rules and the typed members of tvm::support::Stream.
 *
 * Wire format (identical to what TVM's C++/Python side produces for
 * executables, parameter blobs and device modules):
 *  - arithmetic types: their fixed-width little-endian bytes (sizeof(T));
 *  - enums: the underlying integer type (e.g. `enum class X : int` -> 4 bytes);
 *  - DLDataType: code(u8), bits(u8), lanes(u16)  -> 4 bytes;
 *  - DLDevice:   device_type(i32), device_id(i32) -> 8 bytes;
 *  - std::string / ffi::String / ffi::Bytes: u64 length + raw bytes;
 *  - std::vector<T> / ffi::Array<T>: u64 count + each element;
 *  - std::pair<A, B>: A then B;
 *  - std::map / std::unordered_map / ffi::Map: u64 count + (key, value) pairs.
 * On a big-endian host the bytes are swapped so the format stays little-endian.
 */
#ifndef TVM_SUPPORT_SERIALIZER_H_
#define TVM_SUPPORT_SERIALIZER_H_

#include <dlpack/dlpack.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/endian.h>
#include <tvm/ffi/string.h>
#include <tvm/support/io.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tvm {
namespace support {

namespace detail {
/*! \brief Types whose in-memory bytes are the wire bytes (modulo endianness). */
template <typename T>
constexpr bool kIsScalar = std::is_arithmetic_v<T> || std::is_enum_v<T>;

/*! \brief Read exactly `size` bytes; false on short read. */
inline bool ReadExact(Stream* strm, void* ptr, size_t size) {
  return size == 0 || strm->Read(ptr, size) == size;
}
}  // namespace detail

/*! \brief Primary template: no rule known for T (checked by Stream::Write/Read). */
template <typename T, typename Enable>
struct Serializer {
  static constexpr bool enabled = false;
};

/*! \brief Arithmetic scalars: fixed-width little-endian. */
template <typename T>
struct Serializer<T, std::enable_if_t<std::is_arithmetic_v<T>>> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const T& value) {
    if constexpr (TVM_FFI_IO_NO_ENDIAN_SWAP) {
      strm->Write(static_cast<const void*>(&value), sizeof(T));
    } else {
      T tmp = value;
      ffi::ByteSwap(&tmp, sizeof(T), 1);
      strm->Write(static_cast<const void*>(&tmp), sizeof(T));
    }
  }
  static bool Read(Stream* strm, T* out) {
    if (!detail::ReadExact(strm, out, sizeof(T))) return false;
    if constexpr (!TVM_FFI_IO_NO_ENDIAN_SWAP) {
      ffi::ByteSwap(out, sizeof(T), 1);
    }
    return true;
  }
};

/*! \brief Enums: serialized as their underlying integer type. */
template <typename T>
struct Serializer<T, std::enable_if_t<std::is_enum_v<T>>> {
  using U = std::underlying_type_t<T>;
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const T& value) {
    Serializer<U>::Write(strm, static_cast<U>(value));
  }
  static bool Read(Stream* strm, T* out) {
    U v;
    if (!Serializer<U>::Read(strm, &v)) return false;
    *out = static_cast<T>(v);
    return true;
  }
};

/*! \brief DLDataType: code(u8) bits(u8) lanes(u16). */
template <>
struct Serializer<DLDataType> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const DLDataType& v) {
    Serializer<uint8_t>::Write(strm, v.code);
    Serializer<uint8_t>::Write(strm, v.bits);
    Serializer<uint16_t>::Write(strm, v.lanes);
  }
  static bool Read(Stream* strm, DLDataType* out) {
    return Serializer<uint8_t>::Read(strm, &out->code) &&
           Serializer<uint8_t>::Read(strm, &out->bits) &&
           Serializer<uint16_t>::Read(strm, &out->lanes);
  }
};

/*! \brief DLDevice: device_type(i32) device_id(i32). */
template <>
struct Serializer<DLDevice> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const DLDevice& v) {
    Serializer<int32_t>::Write(strm, static_cast<int32_t>(v.device_type));
    Serializer<int32_t>::Write(strm, static_cast<int32_t>(v.device_id));
  }
  static bool Read(Stream* strm, DLDevice* out) {
    int32_t type, id;
    if (!Serializer<int32_t>::Read(strm, &type) || !Serializer<int32_t>::Read(strm, &id)) {
      return false;
    }
    out->device_type = static_cast<DLDeviceType>(type);
    out->device_id = id;
    return true;
  }
};

/*! \brief Byte strings: u64 length + raw bytes. */
template <>
struct Serializer<std::string> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const std::string& s) {
    Serializer<uint64_t>::Write(strm, static_cast<uint64_t>(s.size()));
    if (!s.empty()) strm->Write(static_cast<const void*>(s.data()), s.size());
  }
  static bool Read(Stream* strm, std::string* out) {
    uint64_t n;
    if (!Serializer<uint64_t>::Read(strm, &n)) return false;
    out->resize(static_cast<size_t>(n));
    return detail::ReadExact(strm, out->data(), out->size());
  }
};

template <>
struct Serializer<ffi::String> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const ffi::String& s) {
    Serializer<uint64_t>::Write(strm, static_cast<uint64_t>(s.size()));
    if (s.size() != 0) strm->Write(static_cast<const void*>(s.data()), s.size());
  }
  static bool Read(Stream* strm, ffi::String* out) {
    std::string tmp;
    if (!Serializer<std::string>::Read(strm, &tmp)) return false;
    *out = ffi::String(std::move(tmp));
    return true;
  }
};

template <>
struct Serializer<ffi::Bytes> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const ffi::Bytes& s) {
    Serializer<uint64_t>::Write(strm, static_cast<uint64_t>(s.size()));
    if (s.size() != 0) strm->Write(static_cast<const void*>(s.data()), s.size());
  }
  static bool Read(Stream* strm, ffi::Bytes* out) {
    std::string tmp;
    if (!Serializer<std::string>::Read(strm, &tmp)) return false;
    *out = ffi::Bytes(std::move(tmp));
    return true;
  }
};

/*! \brief std::vector<T>: u64 count + elements (bulk copy for scalars). */
template <typename T, typename A>
struct Serializer<std::vector<T, A>> {
  static constexpr bool enabled = Serializer<T>::enabled;
  static void Write(Stream* strm, const std::vector<T, A>& vec) {
    Serializer<uint64_t>::Write(strm, static_cast<uint64_t>(vec.size()));
    if constexpr (std::is_same_v<T, bool>) {  // vector<bool> has no contiguous data()
      for (bool b : vec) Serializer<bool>::Write(strm, b);
    } else {
      strm->WriteArray(vec.data(), vec.size());
    }
  }
  static bool Read(Stream* strm, std::vector<T, A>* out) {
    uint64_t n;
    if (!Serializer<uint64_t>::Read(strm, &n)) return false;
    out->resize(static_cast<size_t>(n));
    if constexpr (std::is_same_v<T, bool>) {
      for (size_t i = 0; i < out->size(); ++i) {
        bool b;
        if (!Serializer<bool>::Read(strm, &b)) return false;
        (*out)[i] = b;
      }
      return true;
    } else {
      return strm->ReadArray(out->data(), out->size());
    }
  }
};

/*! \brief ffi::Array<T>: same layout as std::vector<T>. */
template <typename T>
struct Serializer<ffi::Array<T>> {
  static constexpr bool enabled = Serializer<T>::enabled;
  static void Write(Stream* strm, const ffi::Array<T>& arr) {
    Serializer<uint64_t>::Write(strm, static_cast<uint64_t>(arr.size()));
    for (const T& v : arr) Serializer<T>::Write(strm, v);
  }
  static bool Read(Stream* strm, ffi::Array<T>* out) {
    uint64_t n;
    if (!Serializer<uint64_t>::Read(strm, &n)) return false;
    ffi::Array<T> result;
    result.reserve(static_cast<int64_t>(n));
    for (uint64_t i = 0; i < n; ++i) {
      T v;
      if (!Serializer<T>::Read(strm, &v)) return false;
      result.push_back(v);
    }
    *out = std::move(result);
    return true;
  }
};

/*! \brief std::pair<A, B>: first then second. */
template <typename A, typename B>
struct Serializer<std::pair<A, B>> {
  static constexpr bool enabled = Serializer<A>::enabled && Serializer<B>::enabled;
  static void Write(Stream* strm, const std::pair<A, B>& p) {
    Serializer<A>::Write(strm, p.first);
    Serializer<B>::Write(strm, p.second);
  }
  static bool Read(Stream* strm, std::pair<A, B>* out) {
    return Serializer<A>::Read(strm, &out->first) && Serializer<B>::Read(strm, &out->second);
  }
};

namespace detail {
/*! \brief Shared rule for associative containers: u64 count + (key, value) pairs. */
template <typename MapT, typename K, typename V>
struct MapSerializer {
  static constexpr bool enabled = Serializer<K>::enabled && Serializer<V>::enabled;
  static void Write(Stream* strm, const MapT& m) {
    Serializer<uint64_t>::Write(strm, static_cast<uint64_t>(m.size()));
    for (const auto& kv : m) {
      Serializer<K>::Write(strm, kv.first);
      Serializer<V>::Write(strm, kv.second);
    }
  }
  template <typename Insert>
  static bool ReadPairs(Stream* strm, Insert insert) {
    uint64_t n;
    if (!Serializer<uint64_t>::Read(strm, &n)) return false;
    for (uint64_t i = 0; i < n; ++i) {
      K key;
      V value;
      if (!Serializer<K>::Read(strm, &key) || !Serializer<V>::Read(strm, &value)) return false;
      insert(std::move(key), std::move(value));
    }
    return true;
  }
};
}  // namespace detail

template <typename K, typename V, typename C, typename A>
struct Serializer<std::map<K, V, C, A>> : detail::MapSerializer<std::map<K, V, C, A>, K, V> {
  using Base = detail::MapSerializer<std::map<K, V, C, A>, K, V>;
  static bool Read(Stream* strm, std::map<K, V, C, A>* out) {
    out->clear();
    return Base::ReadPairs(strm, [out](K&& k, V&& v) { (*out)[std::move(k)] = std::move(v); });
  }
};

template <typename K, typename V, typename H, typename E, typename A>
struct Serializer<std::unordered_map<K, V, H, E, A>>
    : detail::MapSerializer<std::unordered_map<K, V, H, E, A>, K, V> {
  using Base = detail::MapSerializer<std::unordered_map<K, V, H, E, A>, K, V>;
  static bool Read(Stream* strm, std::unordered_map<K, V, H, E, A>* out) {
    out->clear();
    return Base::ReadPairs(strm, [out](K&& k, V&& v) { (*out)[std::move(k)] = std::move(v); });
  }
};

template <typename K, typename V>
struct Serializer<ffi::Map<K, V>> : detail::MapSerializer<ffi::Map<K, V>, K, V> {
  using Base = detail::MapSerializer<ffi::Map<K, V>, K, V>;
  static bool Read(Stream* strm, ffi::Map<K, V>* out) {
    ffi::Map<K, V> result;
    if (!Base::ReadPairs(strm, [&result](K&& k, V&& v) { result.Set(k, v); })) return false;
    *out = std::move(result);
    return true;
  }
};

// ---- typed members of Stream (declared in io.h) ----

template <typename T>
inline void Stream::Write(const T& value) {
  static_assert(Serializer<T>::enabled, "tvm::support::Serializer<T> is not defined for this T");
  Serializer<T>::Write(this, value);
}

template <typename T>
inline bool Stream::Read(T* out) {
  static_assert(Serializer<T>::enabled, "tvm::support::Serializer<T> is not defined for this T");
  return Serializer<T>::Read(this, out);
}

template <typename T>
inline void Stream::WriteArray(const T* data, size_t num_elems) {
  if (num_elems == 0) return;
  if constexpr (detail::kIsScalar<T>) {
    if constexpr (TVM_FFI_IO_NO_ENDIAN_SWAP) {
      this->Write(static_cast<const void*>(data), sizeof(T) * num_elems);
    } else {
      std::vector<T> tmp(data, data + num_elems);
      ffi::ByteSwap(tmp.data(), sizeof(T), num_elems);
      this->Write(static_cast<const void*>(tmp.data()), sizeof(T) * num_elems);
    }
  } else {
    for (size_t i = 0; i < num_elems; ++i) this->Write<T>(data[i]);
  }
}

template <typename T>
inline bool Stream::ReadArray(T* data, size_t num_elems) {
  if (num_elems == 0) return true;
  if constexpr (detail::kIsScalar<T>) {
    if (!detail::ReadExact(this, static_cast<void*>(data), sizeof(T) * num_elems)) return false;
    if constexpr (!TVM_FFI_IO_NO_ENDIAN_SWAP) {
      ffi::ByteSwap(data, sizeof(T), num_elems);
    }
    return true;
  } else {
    for (size_t i = 0; i < num_elems; ++i) {
      if (!this->Read<T>(data + i)) return false;
    }
    return true;
  }
}

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_SERIALIZER_H_
