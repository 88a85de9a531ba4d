// The shared backend sessions of one runtime: Sessions of the same model and options opened in it share
// one backend session, which dies with the last of them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backend.hpp"

namespace jb {

class ShareCache {
 public:
  // The backend session for `model` (a path; the bytes when `bytes` is non-null) and `options`: the one
  // open in this cache, else a new one (options.shared false: always a new one, not cached).
  std::shared_ptr<Backend> open(const std::string& model, const void* bytes, size_t size, const SessionOptions& options);

 private:
  struct Entry {
    std::mutex mutex;
    std::weak_ptr<Backend> backend;
  };
  std::shared_ptr<Entry> entry(const std::string& key);

  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
};

}  // namespace jb
