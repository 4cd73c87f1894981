// wsd: compatible re-implementation of an internal TVM helper missing from the apache-tvm wheel.
// SPDX-License-Identifier: Apache-2.0
/*!
 * \file src/support/arena.h
 * \brief Bump-pointer arena for short-lived POD allocations (RPC / disco argument decoding).
 *
 * Memory comes in pages obtained from a PageAllocator:
 *   ArenaPageHeader* allocate(size_t min_size);   // page of >= min_size bytes, header filled
 *   void deallocate(ArenaPageHeader* page);
 * The header sits at the start of each page; `size` is the page size in bytes
 * (header included) and `offset` the first free byte, relative to the page start.
 * RecycleAll() makes every page reusable without returning it; FreeAll() returns
 * all pages to the allocator.  Objects are never constructed or destroyed: only
 * use it for trivial types.
 */
#ifndef TVM_SUPPORT_ARENA_H_
#define TVM_SUPPORT_ARENA_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace tvm {
namespace support {

/*! \brief Header placed at the beginning of every arena page. */
struct ArenaPageHeader {
  /*! \brief Next page in the arena's (active or free) list. */
  ArenaPageHeader* next;
  /*! \brief Total size of the page in bytes, header included. */
  size_t size;
  /*! \brief Offset of the first free byte from the start of the page. */
  size_t offset;
};

/*! \brief Default page allocator backed by operator new / delete. */
class SimplePageAllocator {
 public:
  static constexpr size_t kPageSize = 16 << 10;

  ArenaPageHeader* allocate(size_t min_size) {
    size_t size = std::max(min_size, kPageSize);
    ArenaPageHeader* page = static_cast<ArenaPageHeader*>(::operator new(size));
    page->next = nullptr;
    page->size = size;
    page->offset = sizeof(ArenaPageHeader);
    return page;
  }
  void deallocate(ArenaPageHeader* page) { ::operator delete(page); }
};

/*!
 * \brief Arena over pages provided by PageAllocator.
 * \tparam PageAllocator see the file comment for the required interface.
 */
template <typename PageAllocator>
class GenericArena {
 public:
  GenericArena() = default;
  explicit GenericArena(PageAllocator alloc) : alloc_(std::move(alloc)) {}
  GenericArena(const GenericArena&) = delete;
  GenericArena& operator=(const GenericArena&) = delete;
  ~GenericArena() { FreeAll(); }

  /*!
   * \brief Allocate `size` bytes aligned to `align` (a power of two).
   * \return Uninitialized memory valid until RecycleAll() / FreeAll().
   */
  void* Alloc(size_t size, size_t align = alignof(std::max_align_t)) {
    if (active_ != nullptr) {
      if (void* p = TryAlloc(active_, size, align)) return p;
    }
    // Worst case: header + alignment slack + payload.
    size_t need = sizeof(ArenaPageHeader) + align + size;
    ArenaPageHeader* page = TakeFreePage(need);
    if (page == nullptr) {
      page = alloc_.allocate(need);
      if (page == nullptr) throw std::bad_alloc();
    }
    void* p = TryAlloc(page, size, align);
    // Keep bump-allocating from whichever page has more room left.
    if (active_ != nullptr && Remaining(page) < Remaining(active_)) {
      page->next = active_->next;
      active_->next = page;
    } else {
      page->next = active_;
      active_ = page;
    }
    return p;
  }

  /*! \brief Uninitialized storage for `count` objects of trivial type T. */
  template <typename T>
  T* allocate_(int count) {
    size_t n = count > 0 ? static_cast<size_t>(count) : 0;
    return static_cast<T*>(Alloc(sizeof(T) * n, alignof(T)));
  }

  /*! \brief Invalidate all allocations but keep the pages for reuse. */
  void RecycleAll() {
    while (active_ != nullptr) {
      ArenaPageHeader* page = active_;
      active_ = page->next;
      page->offset = sizeof(ArenaPageHeader);
      page->next = free_;
      free_ = page;
    }
  }

  /*! \brief Invalidate all allocations and return every page to the allocator. */
  void FreeAll() {
    RecycleAll();
    while (free_ != nullptr) {
      ArenaPageHeader* page = free_;
      free_ = page->next;
      alloc_.deallocate(page);
    }
  }

 private:
  static size_t Remaining(const ArenaPageHeader* page) { return page->size - page->offset; }

  static void* TryAlloc(ArenaPageHeader* page, size_t size, size_t align) {
    uintptr_t base = reinterpret_cast<uintptr_t>(page);
    uintptr_t ptr = (base + page->offset + (align - 1)) & ~static_cast<uintptr_t>(align - 1);
    if (ptr + size > base + page->size) return nullptr;
    page->offset = static_cast<size_t>(ptr + size - base);
    return reinterpret_cast<void*>(ptr);
  }

  /*! \brief Detach the first free page with at least `need` bytes, or nullptr. */
  ArenaPageHeader* TakeFreePage(size_t need) {
    for (ArenaPageHeader** link = &free_; *link != nullptr; link = &(*link)->next) {
      if ((*link)->size >= need) {
        ArenaPageHeader* page = *link;
        *link = page->next;
        page->next = nullptr;
        page->offset = sizeof(ArenaPageHeader);
        return page;
      }
    }
    return nullptr;
  }

  PageAllocator alloc_;
  ArenaPageHeader* active_{nullptr};  // pages holding live allocations; head is bump target
  ArenaPageHeader* free_{nullptr};    // recycled pages
};

/*! \brief Arena using the default heap-backed page allocator. */
using Arena = GenericArena<SimplePageAllocator>;

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_ARENA_H_
