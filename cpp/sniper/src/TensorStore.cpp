// The tensor store: owned aligned storage or views, kept in the task's DataMemSvc.
#include "juno_bridge/sniper/TensorStore.h"

#include <SniperKernel/DLElement.h>
#include <SniperKernel/DataMemSvc.h>
#include <SniperKernel/ExecUnit.h>

#include <cstdlib>
#include <cstring>

namespace jb::sniper {
namespace {

// What DataMemSvc holds: it deletes the block at the task's finalize; holders of the shared store
// (the Python module) see it expire then.
struct StoreBlock : IDataBlock {
  std::shared_ptr<TensorStore> store = std::make_shared<TensorStore>();
};

ExecUnit* task_of(DLElement* element) {
  if (element == nullptr) throw Error(ErrorCode::InvalidArgument, "TensorStore: no SNiPER element given");
  if (auto* unit = dynamic_cast<ExecUnit*>(element)) return unit;
  if (auto* parent = element->getParent()) return parent;
  throw Error(ErrorCode::InvalidArgument, "TensorStore: '" + element->objName() +
                                              "' belongs to no task yet (add it to a task first)");
}

std::shared_ptr<void> aligned_storage(size_t bytes) {
  const size_t size = (bytes + TensorStore::kAlignment - 1) / TensorStore::kAlignment * TensorStore::kAlignment;
  void* p = std::aligned_alloc(TensorStore::kAlignment, size == 0 ? TensorStore::kAlignment : size);
  if (p == nullptr) throw Error(ErrorCode::Runtime, "TensorStore: cannot allocate " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, size == 0 ? TensorStore::kAlignment : size);
  return std::shared_ptr<void>(p, std::free);
}

TensorView make_view(void* data, DType dtype, const std::vector<int64_t>& shape, const std::string& name) {
  if (dtype_size(dtype) == 0)
    throw Error(ErrorCode::InvalidArgument, "TensorStore: tensor '" + name + "' needs a known dtype");
  for (int64_t d : shape)
    if (d < 0)
      throw Error(ErrorCode::InvalidArgument, "TensorStore: tensor '" + name + "' has a negative extent in " +
                                                  shape_string(shape.data(), static_cast<int32_t>(shape.size())));
  return TensorView(data, dtype, shape.data(), shape.size());
}

}  // namespace

std::shared_ptr<TensorStore> TensorStore::shared(DLElement* element) {
  ExecUnit* task = task_of(element);
  auto* memory = dynamic_cast<DataMemSvc*>(task->find("DataMemSvc"));
  if (memory == nullptr)
    throw Error(ErrorCode::Runtime, "TensorStore: task '" + task->objName() + "' has no DataMemSvc");
  if (auto* block = dynamic_cast<StoreBlock*>(memory->find(kDataBlockName))) return block->store;
  auto* block = new StoreBlock;
  memory->regist(kDataBlockName, block, true);
  return block->store;
}

TensorStore& TensorStore::of(DLElement* element) { return *shared(element); }

const TensorView& TensorStore::create(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                                      Origin origin) {
  TensorView wanted = make_view(nullptr, dtype, shape, name);
  StoredTensor& t = tensors_[name];
  const auto allocator = allocators_.find(name);
  const std::string source = allocator == allocators_.end() ? std::string() : allocator->second.first;
  if (t.owned() && t.capacity >= wanted.nbytes() && t.source == source) {
    wanted.data = t.view.data;  // reused in place: the same address as last event
    wanted.device = t.view.device;
  } else {
    if (allocator != allocators_.end()) {
      Tensor storage = allocator->second.second(dtype, shape);  // the reader's Session::empty
      std::memset(storage.view.data, 0, storage.view.nbytes());
      t.holder = std::move(storage.holder);
      wanted.device = storage.view.device;
    } else {
      t.holder = aligned_storage(wanted.nbytes());
    }
    t.capacity = wanted.nbytes() == 0 ? kAlignment : wanted.nbytes();
    wanted.data = t.holder.get();
  }
  t.source = source;
  t.view = wanted;
  t.origin = origin;
  return t.view;
}

bool TensorStore::allocate_with(const std::string& name, const std::string& by, Allocator allocator) {
  return allocators_.emplace(name, std::make_pair(by, std::move(allocator))).second;
}

void TensorStore::release_allocator(const std::string& name, const std::string& by) {
  auto it = allocators_.find(name);
  if (it != allocators_.end() && it->second.first == by) allocators_.erase(it);
}

std::string TensorStore::allocator_of(const std::string& name) const {
  auto it = allocators_.find(name);
  return it == allocators_.end() ? std::string() : it->second.first;
}

void TensorStore::view(const std::string& name, const TensorView& v, std::shared_ptr<void> owner, Origin origin) {
  if (v.data == nullptr && v.nbytes() != 0)
    throw Error(ErrorCode::InvalidArgument, "TensorStore: view '" + name + "' has no data");
  make_view(v.data, v.dtype, v.dims(), name);
  tensors_[name] = StoredTensor{v, std::move(owner), 0, origin, {}};
}

void TensorStore::adopt(const std::string& name, const Tensor& tensor) {
  tensors_[name] = StoredTensor{tensor.view, tensor.holder, 0, Origin::Cpp, {}};
}

const StoredTensor* TensorStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorView& TensorStore::at(const std::string& name) const {
  if (const StoredTensor* t = find(name)) return t->view;
  throw Error(ErrorCode::Input, "the tensor store has no tensor '" + name + "'; it holds " + names_string());
}

const TensorView& TensorStore::at(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const {
  const TensorView& v = at(name);
  bool same = v.dtype == dtype && v.rank == static_cast<int32_t>(shape.size());
  for (int32_t i = 0; same && i < v.rank; ++i) same = shape[i] < 0 || shape[i] == v.shape[i];
  if (!same)
    throw Error(ErrorCode::Input, "tensor store: '" + name + "' is " + dtype_name(v.dtype) + " " +
                                      shape_string(v.shape, v.rank) + ", expected " + dtype_name(dtype) + " " +
                                      shape_string(shape.data(), static_cast<int32_t>(shape.size())));
  return v;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

std::string TensorStore::names_string() const {
  std::string s;
  for (const auto& kv : tensors_) s += (s.empty() ? "" : ", ") + kv.first;
  return s.empty() ? "nothing" : s;
}

}  // namespace jb::sniper
