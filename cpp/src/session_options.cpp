// SessionOptions from their string form (the C ABI's and Python's spelling), and the messages that list them.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend.hpp"

namespace jb {

namespace {

// Digits only: strtol would take " 2", "+2" and "2 " as well, and a typo should not pass as a number.
int parse_int(const std::string& key, const std::string& value) {
  const bool digits = !value.empty() && value.size() <= 7 &&
                      value.find_first_not_of("0123456789") == std::string::npos;
  const long v = digits ? std::strtol(value.c_str(), nullptr, 10) : -1;
  if (v < 0 || v > 1 << 20)
    throw Error(ErrorCode::InvalidArgument, "option '" + key + "' needs a non-negative integer; got '" + value + "'");
  return static_cast<int>(v);
}

bool parse_flag(const std::string& key, const std::string& value) {
  if (value != "0" && value != "1")
    throw Error(ErrorCode::InvalidArgument, "option '" + key + "' is 0 or 1; got '" + value + "'");
  return value == "1";
}

// "cuda,cpu" -> {"cuda", "cpu"}: at least one name, none empty, none twice.
std::vector<std::string> parse_providers(const std::string& value) {
  std::vector<std::string> names;
  for (size_t start = 0; start < value.size();) {
    const size_t comma = std::min(value.find(',', start), value.size());
    const std::string item = value.substr(start, comma - start);
    start = comma + 1;
    if (item.empty())
      throw Error(ErrorCode::InvalidArgument, "option 'providers': an empty name in '" + value + "'");
    if (std::find(names.begin(), names.end(), item) != names.end())
      throw Error(ErrorCode::InvalidArgument, "option 'providers': '" + item + "' named twice in '" + value + "'");
    names.push_back(item);
  }
  if (names.empty() || value.back() == ',')
    throw Error(ErrorCode::InvalidArgument, "option 'providers' needs one or more names (e.g. 'cuda,cpu'); got '" +
                                                value + "'");
  return names;
}

}  // namespace

const char* const kSessionOptionNames[] = {
    "backend",     "intra_op_threads", "inter_op_threads",   "optimization",       "providers",
    "onnxruntime", "log_level",        "execution_mode",     "global_thread_pool", "require_providers",
    "shared",      "async_runs",       "bfloat16_as_uint16", "cuda_graph",         "output_device",
    "staging"};

void SessionOptions::set(const std::string& key, const std::string& value) {
  if (key.rfind(kConfigPrefix, 0) == 0) {
    if (key.size() == kConfigPrefix.size())
      throw Error(ErrorCode::InvalidArgument, "option '" + key + "' names no entry: config.<key>");
    config[key.substr(kConfigPrefix.size())] = value;
  } else if (key == "backend") backend = value;
  else if (key == "intra_op_threads") intra_op_threads = parse_int(key, value);
  else if (key == "inter_op_threads") inter_op_threads = parse_int(key, value);
  else if (key == "optimization") optimization = value;
  else if (key == "onnxruntime") onnxruntime = value;
  else if (key == "log_level") log_level = value;
  else if (key == "execution_mode") execution_mode = value;
  else if (key == "global_thread_pool") global_thread_pool = parse_flag(key, value);
  else if (key == "require_providers") require_providers = parse_flag(key, value);
  else if (key == "shared") shared = parse_flag(key, value);
  else if (key == "bfloat16_as_uint16") bfloat16_as_uint16 = parse_flag(key, value);
  else if (key == "cuda_graph") cuda_graph = parse_flag(key, value);
  else if (key == "async_runs") {
    if (value != "auto" && value != "native" && value != "pool")
      throw Error(ErrorCode::InvalidArgument, "option 'async_runs' must be auto, native or pool, got '" + value + "'");
    async_runs = value;
  } else if (key == "output_device") {
    if (value != "cpu" && value != "cuda")
      throw Error(ErrorCode::InvalidArgument, "option 'output_device' must be cpu or cuda, got '" + value + "'");
    output_device = value;
  } else if (key == "staging") {
    if (value != "off" && value != "pinned")
      throw Error(ErrorCode::InvalidArgument, "option 'staging' must be off or pinned, got '" + value + "'");
    staging = value;
  } else if (key == "providers") providers = parse_providers(value);
  else if (key.empty()) {
    throw Error(ErrorCode::InvalidArgument, "option key must not be empty");
  } else {
    config[key] = value;  // a backend-specific entry; the backend that opens the model checks its name
  }
}

std::string session_option_names() {
  std::string names;
  for (const char* n : kSessionOptionNames) names += (names.empty() ? "" : ", ") + std::string(n);
  return names;
}

void reject_option(const std::string& key, const std::string& backend, const std::string& own) {
  throw Error(ErrorCode::InvalidArgument, "unknown option '" + key + "' for the " + backend + " backend; the options are " +
                                              session_option_names() + ", and the " + backend + " backend's own: " + own);
}

}  // namespace jb
