// ShareCache: one backend session per model and options in a runtime.
#include "share_cache.hpp"

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string_view>

namespace jb {

namespace {

// What makes two opens the same backend session: the model (a file by its resolved path, size and
// modification time, so a rewritten file is a new model; bytes by size and hash; any other name, such
// as python:module:f, as written) and every option but `shared`, `bfloat16_as_uint16` and `staging` (the
// Session's own). Built by concatenation, never through iostreams: a stream formats through the global locale,
// whose facets a library linked to another libstdc++ (a static one, under -static-libstdc++) must not touch.
std::string share_key(const std::string& model, const void* bytes, size_t size, const SessionOptions& o) {
  using std::to_string;
  std::string key;
  if (bytes != nullptr) {
    key = "bytes:" + to_string(size) + ':' +
          to_string(std::hash<std::string_view>{}({static_cast<const char*>(bytes), size}));
  } else {
    std::error_code ec;
    const auto canonical = std::filesystem::canonical(model, ec);
    const auto status = std::filesystem::status(canonical, ec);
    if (!ec && std::filesystem::exists(status)) {
      const auto mtime = std::filesystem::last_write_time(canonical, ec).time_since_epoch().count();
      const auto bytes_on_disk =
          std::filesystem::is_regular_file(status) ? std::filesystem::file_size(canonical, ec) : 0;
      key = "file:" + canonical.string() + ':' + to_string(bytes_on_disk) + ':' + to_string(mtime);
    } else {
      key = "name:" + model;
    }
  }
  // The default ONNX Runtime may come from the environment: part of the key too.
  const char* env_ort = o.onnxruntime.empty() ? std::getenv("JUNO_BRIDGE_ONNXRUNTIME") : nullptr;
  key += '\n' + o.backend + '\n' + to_string(o.intra_op_threads) + ',' + to_string(o.inter_op_threads) + ',' +
         o.optimization + ',' + o.onnxruntime + ',' + (env_ort ? env_ort : "") + ',' + o.log_level + ',' +
         o.execution_mode + ',' + to_string(o.global_thread_pool) + ',' + to_string(o.require_providers) + ',' +
         o.async_runs + ',' + to_string(o.cuda_graph) + ',' + o.output_device;
  for (const auto& p : o.providers) key += "\np:" + p;
  for (const auto& [k, v] : o.config) key += "\nc:" + k + '=' + v;
  return key;
}

}  // namespace

// Each key has its own entry and lock, so opening one model does not wait for another model's load,
// while two opens of the same model load it once.
std::shared_ptr<ShareCache::Entry> ShareCache::entry(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Forget the models no Session uses any more. An entry only this map holds (copies are made under this
  // lock) is one no thread is opening: only then is its weak_ptr read, under the entry's own lock, which
  // orders the read after the last open's write (TSan: use_count() alone is a relaxed load).
  for (auto it = entries_.begin(); it != entries_.end();) {
    bool unused = false;
    if (it->second.use_count() == 1) {
      std::lock_guard<std::mutex> entry_lock(it->second->mutex);  // free: no other thread holds the entry
      unused = it->second->backend.expired();
    }
    it = unused ? entries_.erase(it) : std::next(it);
  }
  auto& e = entries_[key];
  if (!e) e = std::make_shared<Entry>();
  return e;
}

std::shared_ptr<Backend> ShareCache::open(const std::string& model, const void* bytes, size_t size,
                                          const SessionOptions& options) {
  if (!options.shared) return open_backend(model, bytes, size, options);
  const std::shared_ptr<Entry> e = entry(share_key(model, bytes, size, options));
  std::lock_guard<std::mutex> lock(e->mutex);
  if (std::shared_ptr<Backend> existing = e->backend.lock()) return existing;
  std::shared_ptr<Backend> backend = open_backend(model, bytes, size, options);
  e->backend = backend;
  return backend;
}

}  // namespace jb
