// Reads the input checks out of an AOTInductor wrapper source (format: torch/_inductor/codegen/
// cpp_wrapper_cpu.py, generate_input_output_runtime_checks). Lines it reads, one statement each:
//   ConstantHandle arg0_1 = ConstantHandle(input_handles[0]);          the variable of input 0
//   int32_t arg0_1_expected_dtype = aoti_torch_dtype_float32();
//   if (8 != arg0_1_size[1]) {                                           a fixed dim
//   if (arg0_1_size[0] < 2) {    if (arg0_1_size[0] > 100) {             a dynamic dim's bounds
//   if (1 != arg0_1_stride[1]) {                                         (a dim exists)
//   ... assert_size_stride(arg0_1, {s77, 8L}, {8L, 1L}, "input"); ...   every dim, as a symbol or a number
//   int64_t s77 = arg0_1_size[0];                                        where a symbol is read from
#include "torch_package_checks.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "juno_bridge/tensor.hpp"

namespace jb::torch_plugin {
namespace {

// Torch traces a dynamic dim at sizes of at least 2, so the compiled range of a plain symbol starts at
// 2 whatever range it was exported for; the code runs at 1 too (torch's aot_inductor.check_lowerbound).
constexpr int64_t kTracingFloor = 2;

struct CheckedInput {
  std::string var;
  std::string dtype;
  std::map<size_t, int64_t> fixed, lower, upper;
  std::map<size_t, std::string> symbol;  // from `int64_t s77 = arg0_1_size[0];`
  std::optional<std::vector<std::string>> sizes;
  size_t rank = 0;
  bool seen = false;

  void saw_dim(size_t d) { rank = std::max(rank, d + 1); }
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::optional<int64_t> integer(std::string_view s) {
  if (!s.empty() && s.back() == 'L') s.remove_suffix(1);
  int64_t v = 0;
  const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || error != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "arg0_1_size[3]" with var "arg0_1" and part "size" -> 3.
std::optional<size_t> subscript(std::string_view s, const std::string& var, std::string_view part) {
  const std::string head = var + "_" + std::string(part) + "[";
  if (!starts_with(s, head) || s.back() != ']') return std::nullopt;
  auto v = integer(s.substr(head.size(), s.size() - head.size() - 1));
  if (!v || *v < 0) return std::nullopt;
  return static_cast<size_t>(*v);
}

std::vector<std::string> split_list(std::string_view s) {  // "s77, 8L" -> {"s77", "8L"}
  std::vector<std::string> out;
  size_t depth = 0, start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i < s.size() && (s[i] == '(' || s[i] == '[')) ++depth;
    if (i < s.size() && (s[i] == ')' || s[i] == ']') && depth) --depth;
    if (i == s.size() || (s[i] == ',' && depth == 0)) {
      if (auto item = trim(s.substr(start, i - start)); !item.empty()) out.emplace_back(item);
      start = i + 1;
    }
  }
  return out;
}

bool is_symbol(std::string_view s) {  // s77, u3: one of torch's shape symbols
  if (s.size() < 2 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s.substr(1))
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// "if (A OP B) {" -> the three words.
std::optional<std::array<std::string_view, 3>> comparison(std::string_view line) {
  if (!starts_with(line, "if (") || line.size() < 8 || line.substr(line.size() - 3) != ") {") return std::nullopt;
  std::string_view body = line.substr(4, line.size() - 7);
  const size_t a = body.find(' '), b = body.rfind(' ');
  if (a == std::string_view::npos || a == b) return std::nullopt;
  return std::array<std::string_view, 3>{body.substr(0, a), body.substr(a + 1, b - a - 1), body.substr(b + 1)};
}

void read_check_line(std::string_view line, CheckedInput& in) {
  if (in.var.empty()) return;
  const std::string dtype_head = "int32_t " + in.var + "_expected_dtype = aoti_torch_dtype_";
  if (starts_with(line, dtype_head)) {
    std::string_view rest = line.substr(dtype_head.size());
    in.dtype = std::string(rest.substr(0, rest.find('(')));
    return;
  }
  auto c = comparison(line);
  if (!c) return;
  const auto [a, op, b] = *c;
  if (op == "!=") {
    if (auto d = subscript(b, in.var, "size"); d && integer(a)) in.fixed[*d] = *integer(a), in.saw_dim(*d);
    if (auto d = subscript(b, in.var, "stride")) in.saw_dim(*d);
  } else if (op == "<" || op == ">") {
    auto d = subscript(a, in.var, "size");
    auto v = integer(b);
    if (d && v) (op == "<" ? in.lower : in.upper)[*d] = *v, in.saw_dim(*d);
  }
}

// Reads the JSON object {"s77": {"min_val": 1, "max_val": 100}, ...} at `at`: name -> (min, max), an
// end that is null or not an integer left out.
class RangeReader {
 public:
  RangeReader(const std::string& text, size_t at) : s_(text), at_(at) {}

  std::map<std::string, std::pair<std::optional<int64_t>, std::optional<int64_t>>> read() {
    std::map<std::string, std::pair<std::optional<int64_t>, std::optional<int64_t>>> out;
    expect('{');
    if (peek() == '}') return ++at_, out;
    do {
      const std::string name = string();
      expect(':');
      expect('{');
      auto& range = out[name];
      if (peek() != '}') {
        do {
          const std::string key = string();
          expect(':');
          const std::optional<int64_t> v = scalar();
          if (key == "min_val") range.first = v;
          if (key == "max_val") range.second = v;
        } while (next_is(','));
      }
      expect('}');
    } while (next_is(','));
    expect('}');
    return out;
  }

 private:
  char peek() {
    while (at_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[at_]))) ++at_;
    if (at_ >= s_.size()) throw std::invalid_argument("range_constraints: unexpected end");
    return s_[at_];
  }
  void expect(char c) {
    if (peek() != c) throw std::invalid_argument(std::string("range_constraints: expected '") + c + "'");
    ++at_;
  }
  bool next_is(char c) { return peek() == c ? (++at_, true) : false; }
  std::string string() {
    expect('"');
    const size_t end = s_.find('"', at_);
    if (end == std::string::npos) throw std::invalid_argument("range_constraints: unterminated string");
    std::string out = s_.substr(at_, end - at_);
    at_ = end + 1;
    return out;
  }
  std::optional<int64_t> scalar() {  // a number (integer or not), null, true, false or a string
    if (peek() == '"') return string(), std::nullopt;
    const size_t start = at_;
    while (at_ < s_.size() && s_[at_] != ',' && s_[at_] != '}' && !std::isspace(static_cast<unsigned char>(s_[at_])))
      ++at_;
    return integer(std::string_view(s_).substr(start, at_ - start));
  }

  const std::string& s_;
  size_t at_;
};

}  // namespace

void apply_exported_ranges(Signature& sig, const std::string& json) {
  const std::string key = "\"range_constraints\"";
  const size_t at = json.find(key);
  if (at == std::string::npos) throw std::invalid_argument("it has no range_constraints");
  const size_t colon = json.find(':', at + key.size());
  if (colon == std::string::npos) throw std::invalid_argument("range_constraints: expected ':'");
  const auto ranges = RangeReader(json, colon + 1).read();
  for (auto& [name, r] : sig.dims) {
    auto it = ranges.find(name);
    if (it == ranges.end()) continue;
    const auto& [lo, hi] = it->second;
    r.min = lo && *lo >= 0 ? *lo : 0;
    r.max = hi && *hi >= 0 ? *hi : INT64_MAX;
    r.source = "it was exported for (the range_constraints of the package's ExportedProgram)";
    r.min_note.clear();
  }
}

Signature signature_from_wrapper(const std::string& source, size_t num_inputs) {
  std::vector<CheckedInput> inputs(num_inputs);
  std::map<std::string, size_t> by_var;
  CheckedInput* current = nullptr;
  std::istringstream lines(source);
  for (std::string text; std::getline(lines, text);) {
    const std::string_view line = trim(text);
    if (starts_with(line, "AOTI_NOINLINE static void ") || starts_with(line, "static bool ") ||
        starts_with(line, "void AOTInductorModel::")) {
      current = nullptr;
    } else if (starts_with(line, "ConstantHandle ") && line.find("(input_handles[") != std::string_view::npos) {
      const size_t eq = line.find(" = ");
      const size_t open = line.find("[");
      auto index = integer(line.substr(open + 1, line.find(']') - open - 1));
      if (eq == std::string_view::npos || !index || *index < 0 || static_cast<size_t>(*index) >= num_inputs) continue;
      current = &inputs[*index];
      current->var = std::string(line.substr(15, eq - 15));
      current->seen = true;
      by_var[current->var] = *index;
    } else if (current) {
      read_check_line(line, *current);
    }
    if (const size_t at = line.find("assert_size_stride("); at != std::string_view::npos) {
      std::string_view rest = line.substr(at + 19);
      const size_t comma = rest.find(',');
      const size_t open = rest.find('{'), close = rest.find('}');
      if (comma == std::string_view::npos || open == std::string_view::npos || close < open) continue;
      auto it = by_var.find(std::string(trim(rest.substr(0, comma))));
      if (it != by_var.end() && !inputs[it->second].sizes)
        inputs[it->second].sizes = split_list(rest.substr(open + 1, close - open - 1));
    } else if (starts_with(line, "int64_t ") && line.find("_size[") != std::string_view::npos) {
      const size_t eq = line.find(" = ");
      if (eq == std::string_view::npos || line.back() != ';') continue;
      std::string_view name = line.substr(8, eq - 8), value = line.substr(eq + 3, line.size() - eq - 4);
      for (auto& in : inputs)
        if (auto d = in.var.empty() ? std::nullopt : subscript(value, in.var, "size"); d && is_symbol(name))
          in.symbol.emplace(*d, std::string(name));
    }
  }

  Signature sig;
  const std::string compiled = "that the package's compiled input checks allow (read from its wrapper source)";
  for (size_t i = 0; i < num_inputs; ++i) {
    const CheckedInput& in = inputs[i];
    if (!in.seen || in.dtype.empty())
      throw std::invalid_argument("it states no checks for input " + std::to_string(i));
    TensorSignature t;
    t.name = "input_" + std::to_string(i);
    t.dtype = static_cast<int32_t>(dtype_from_name(in.dtype));
    const size_t rank = in.sizes ? in.sizes->size() : in.rank;
    for (size_t d = 0; d < rank; ++d) {
      std::string word = in.sizes ? (*in.sizes)[d] : "";
      if (auto v = in.fixed.count(d) ? std::optional<int64_t>(in.fixed.at(d)) : integer(word)) {
        t.shape.push_back(*v);
        t.dim_names.emplace_back();
        continue;
      }
      if (word.empty()) word = in.symbol.count(d) ? in.symbol.at(d) : t.name + "." + std::to_string(d);
      t.shape.push_back(-1);
      t.dim_names.push_back(word);
      DimRange r;
      r.source = compiled;
      if (in.lower.count(d)) r.min = in.lower.at(d);
      if (in.upper.count(d)) r.max = in.upper.at(d);
      if (r.min == kTracingFloor && is_symbol(word)) {
        r.min = 1;
        r.min_note = "; its lower bound 1 stands for their 2, torch's tracing floor for a dynamic dim";
      }
      auto [it, fresh] = sig.dims.emplace(word, r);
      if (!fresh) it->second.min = std::max(it->second.min, r.min), it->second.max = std::min(it->second.max, r.max);
    }
    sig.inputs.push_back(std::move(t));
  }
  return sig;
}

}  // namespace jb::torch_plugin
