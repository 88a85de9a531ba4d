// jb::sniper::TensorStore: named, typed tensors shared by every algorithm of a SNiPER task, C++ and Python.
//
// A tensor is either storage the store owns (64-byte aligned, reused across events at a stable address
// while its size fits; from a reading JunoBridgeAlg's session, pinned where that session computes on a
// GPU) or a view of memory an algorithm owns. Storage is reference counted: a numpy
// array handed to Python keeps the bytes it shows alive past the event and past the store. The store
// itself lives in the task's DataMemSvc (key "JunoBridgeTensors") and goes with the task's finalize.
//
//   auto& store = jb::sniper::TensorStore::of(this);                // in any algorithm of the task
//   float* pmt = store.create<float>("pmt", {1, 2, 17612});        // same address every event
//   const jb::TensorView& out = store.at("vertex");                 // what another algorithm wrote
#pragma once
#include <juno_bridge/tensor.hpp>

#include <SniperKernel/IDataBlock.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

class DLElement;

namespace jb::sniper {

// Who made a tensor: Python sees tensors it did not make as read-only arrays.
enum class Origin { Cpp, Python };

struct StoredTensor {
  TensorView view;                // dtype, shape, where the bytes are (view.device: pinned or not)
  std::shared_ptr<void> holder;   // keeps the bytes alive (null: a view whose owner did not share it)
  size_t capacity = 0;            // bytes of owned storage (0 for a view)
  Origin origin = Origin::Cpp;
  std::string source;             // owned storage from a reader's session: that algorithm's name ("": the store's)
  bool owned() const { return capacity > 0; }
};

class TensorStore {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr const char* kDataBlockName = "JunoBridgeTensors";

  // The store of the task `element` belongs to (the element itself when it is a task), made on first use.
  static TensorStore& of(DLElement* element);
  // The same, shared: a holder (the Python module) that may outlive the task sees it expire.
  static std::shared_ptr<TensorStore> shared(DLElement* element);

  // Owned storage for `name` with this dtype and shape. Reuses the tensor's storage when it is owned
  // and large enough (same address as before), else allocates new zeroed storage; arrays over the old
  // storage keep it alive. Returns the tensor's view.
  const TensorView& create(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                           Origin origin = Origin::Cpp);
  template <class T>
  T* create(const std::string& name, const std::vector<int64_t>& shape) {
    return static_cast<T*>(create(name, dtype_of<T>(), shape).data);
  }
  // The storage create() makes for `name` comes from `allocator` (a reading algorithm's Session::empty:
  // pinned host memory where that session copies inputs to a GPU) instead of the store's own aligned
  // memory, from the next create() on. The first reader to ask for a name keeps it: false for the others.
  // `by` names the reader (StoredTensor::source), which takes its allocator back with release_allocator.
  using Allocator = std::function<Tensor(DType, const std::vector<int64_t>&)>;
  bool allocate_with(const std::string& name, const std::string& by, Allocator allocator);
  void release_allocator(const std::string& name, const std::string& by);
  std::string allocator_of(const std::string& name) const;  // who allocates its storage ("": the store)
  // A view of memory the caller owns. With an `owner` sharing that memory, Python arrays keep it
  // alive; without one, Python refuses the tensor (it could outlive the memory).
  void view(const std::string& name, const TensorView& view, std::shared_ptr<void> owner = {},
            Origin origin = Origin::Cpp);
  // Adopts memory a backend allocated (jb::Tensor), without a copy.
  void adopt(const std::string& name, const Tensor& tensor);

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const StoredTensor* find(const std::string& name) const;
  // The tensor, or jb::Error naming the key and the keys the store holds.
  const TensorView& at(const std::string& name) const;
  // The tensor checked against what the caller expects; -1 in `shape` matches any extent.
  const TensorView& at(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const;
  bool erase(const std::string& name) {
    ++erasures_;
    return tensors_.erase(name) != 0;
  }
  // Changes whenever a tensor is erased: until it does, a StoredTensor* from find() stays valid (a tensor
  // made again, viewed or adopted under the same name keeps its entry), so an algorithm may keep it.
  uint64_t erasures() const { return erasures_; }
  std::vector<std::string> names() const;
  std::string names_string() const;  // "a, b, c" or "nothing", for messages
  size_t size() const { return tensors_.size(); }

 private:
  std::map<std::string, StoredTensor> tensors_;
  std::map<std::string, std::pair<std::string, Allocator>> allocators_;  // name -> (reader, its allocator)
  uint64_t erasures_ = 0;
};

}  // namespace jb::sniper
