// The tensor views a plugin is handed: the core's own from plugin ABI 4 on, or copies laid out as
// plugins of ABI 2 and 3 read them (jb_tensor_view before it carried its device: host memory only).
#pragma once

#include <cstring>
#include <vector>

#include "juno_bridge/plugin.h"
#include "juno_bridge/tensor.hpp"

namespace jb {

// jb_tensor_view as plugins of ABI 2 and 3 were built with.
struct LegacyView {
  void* data;
  int32_t dtype;
  int32_t rank;
  int64_t shape[JB_MAX_RANK];
};
static_assert(sizeof(LegacyView) + 2 * sizeof(int32_t) == sizeof(jb_tensor_view) &&
                  offsetof(LegacyView, shape) == offsetof(jb_tensor_view, shape),
              "jb_tensor_view is LegacyView and its device");

// One run's views as the plugin reads them. The core checked them already, so legacy copies are of
// host memory only (a legacy plugin takes no other: Backend::takes).
class PluginViews {
 public:
  PluginViews(bool legacy, const TensorView* views, size_t n) : views_(const_cast<TensorView*>(views)) {
    if (!legacy) return;
    copies_.resize(n);
    for (size_t i = 0; i < n; ++i) std::memcpy(&copies_[i], &views[i], sizeof(LegacyView));
  }
  // The outputs a plugin allocates (data NULL: nothing else of the view is read from the caller) lie in
  // host memory; their views say so from the start, so a plugin never reads a device the caller left unset.
  static void allocated_on_host(TensorView* outputs, size_t n) {
    for (size_t i = 0; i < n; ++i)
      if (outputs[i].data == nullptr) outputs[i].device = Device::cpu();
  }

  jb_tensor_view* get() { return copies_.empty() ? as_c(views_) : reinterpret_cast<jb_tensor_view*>(copies_.data()); }

  // What the plugin wrote into outputs it allocated (data, dtype, rank, shape), back into the core's views.
  void copy_back() {
    for (size_t i = 0; i < copies_.size(); ++i)
      std::memcpy(static_cast<void*>(&views_[i]), &copies_[i], sizeof(LegacyView));
  }

 private:
  TensorView* views_;
  std::vector<LegacyView> copies_;  // empty unless legacy
};

}  // namespace jb
