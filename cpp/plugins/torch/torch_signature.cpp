// Parser of the signature text that juno_bridge.export_torch writes (format in torch_signature.hpp).
#include "torch_signature.hpp"

#include <cctype>
#include <charconv>
#include <sstream>
#include <stdexcept>

#include "juno_bridge/tensor.hpp"

namespace jb::torch_plugin {
namespace {

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

int64_t to_int(const std::string& s, size_t line) {
  int64_t v = 0;
  const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (!is_number(s) || error != std::errc() || end != s.data() + s.size())
    throw std::invalid_argument("line " + std::to_string(line) + ": '" + s + "' is not an integer in [0, 2^63)");
  return v;
}

}  // namespace

Signature parse_signature(const std::string& text) {
  Signature sig;
  std::istringstream lines(text);
  std::string line;
  size_t number = 0;
  bool header = false;
  while (std::getline(lines, line)) {
    ++number;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.empty()) continue;
    if (!header) {
      if (w.size() != 2 || w[0] != kSignatureKey || w[1] != "1")
        throw std::invalid_argument("line " + std::to_string(number) + ": expected '" + kSignatureKey +
                                    " 1', got '" + line + "'");
      header = true;
    } else if (w[0] == "dim") {
      if (w.size() != 4) throw std::invalid_argument("line " + std::to_string(number) + ": expected 'dim NAME MIN MAX'");
      DimRange r{to_int(w[2], number), to_int(w[3], number)};
      if (r.min > r.max) throw std::invalid_argument("line " + std::to_string(number) + ": empty range");
      sig.dims[w[1]] = r;
    } else if (w[0] == "input" || w[0] == "output") {
      if (w.size() < 3)
        throw std::invalid_argument("line " + std::to_string(number) + ": expected '" + w[0] + " NAME DTYPE DIMS...'");
      if (w.size() - 3 > JB_MAX_RANK)
        throw std::invalid_argument("line " + std::to_string(number) + ": rank above " + std::to_string(JB_MAX_RANK));
      TensorSignature t;
      t.name = w[1];
      t.dtype = static_cast<int32_t>(dtype_from_name(w[2]));
      if (t.dtype == 0) throw std::invalid_argument("line " + std::to_string(number) + ": unknown dtype '" + w[2] + "'");
      for (size_t i = 3; i < w.size(); ++i) {
        const bool fixed = is_number(w[i]);
        t.shape.push_back(fixed ? to_int(w[i], number) : -1);
        t.dim_names.push_back(fixed || w[i] == "?" ? "" : w[i]);
      }
      (w[0] == "input" ? sig.inputs : sig.outputs).push_back(std::move(t));
    } else {
      throw std::invalid_argument("line " + std::to_string(number) + ": unknown record '" + w[0] + "'");
    }
  }
  if (!header) throw std::invalid_argument("empty signature");
  for (const auto* list : {&sig.inputs, &sig.outputs})
    for (const auto& t : *list)
      for (const auto& n : t.dim_names)
        if (!n.empty() && !sig.dims.count(n)) sig.dims[n] = DimRange{};
  return sig;
}

}  // namespace jb::torch_plugin
