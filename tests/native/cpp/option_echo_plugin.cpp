// A backend plugin built on the SDK alone (plugin_sdk.hpp), for the tests of the plugin table: it
// reports in its metadata ("custom.options") every option the core passed to open, and runs
// y = 2 * x on float32 [n]. Built twice by tests/native/test_plugin_sdk.py:
//   -DECHO_NAME=optecho                  ABI 4: declares intra_op_threads and colour
//   -DECHO_NAME=optecho2 -DECHO_ABI2     a table laid out as ABI 2 (no struct_size, no options), which
//                                        the core still reads and passes every option, as ABI 2 did.
//   -DECHO_ASYNC                         with a run_async of its own: y written on a thread it starts
//   -DECHO_ASYNC -DECHO_BEFORE_ASYNC     the same, its struct_size that of a table before the
//                                        asynchronous entries: the core must not see them.
//   -DECHO_ASYNC -DECHO_ABI3             with a run_async, declaring ABI 3: the core hands it views laid
//                                        out as before they carried a device (it reads the first one
//                                        only, whose fields lie where they did).
//   -DECHO_DEVICES                       names cuda:0 among its devices and runs on views of cuda:0 only
//                                        (host memory the tests relabel: it reads them like any other);
//                                        declares output_device: with cuda it allocates y in host memory
//                                        labelled cuda:0 (cuda:3 with colour=astray), logging "echo: released
//                                        N bytes" when the core lets it go.
//   -DECHO_PINNED                        hands Session::empty host memory of its own, labelled pinned,
//                                        and logs "echo: released N bytes" when the core lets it go; its
//                                        stats say where it last read x, and a run logs (verbose) the
//                                        devices of the views it was handed ("echo: x cuda_pinned, y cpu").
// A negative x[0] is an input error, from run and from run_async alike.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "juno_bridge/plugin_sdk.hpp"

#define JB_STR2(x) #x
#define JB_STR(x) JB_STR2(x)

namespace {

using namespace jb;

struct Info {
  std::string name;
  int64_t shape[1] = {-1};
  const char* dim_names[1] = {"n"};
  jb_tensor_info c_info() const { return {name.c_str(), JB_DTYPE_FLOAT32, 1, shape, dim_names, nullptr}; }
};

class Echo {
 public:
  static Echo* open(const std::string&, const void*, size_t, const plugin::Options& options) {
    auto* e = new Echo;
    for (const auto& [k, v] : options.pairs()) {
      e->received_ += (e->received_.empty() ? "" : ";") + k + "=" + v;
      e->allocates_on_ = k == "output_device" && v == "cuda" ? 0 : e->allocates_on_;
      e->astray_ = e->astray_ || (k == "colour" && v == "astray");
    }
    e->keys_ = {"producer_name", "custom.options"};
    e->values_ = {"option_echo_plugin", e->received_.c_str()};
    return e;
  }
  const std::vector<Info>& inputs() const { return inputs_; }
  const std::vector<Info>& outputs() const { return outputs_; }
  const std::vector<const char*>& metadata_keys() const { return keys_; }
  const std::vector<const char*>& metadata_values() const { return values_; }
  void stats(uint64_t* wrapped, const void** addresses, size_t n) const {
    *wrapped = 0;
    if (n > 0) addresses[0] = last_x_.load();
  }
  void run(const jb_tensor_view* in, const int32_t*, jb_tensor_view* out, jb_plugin_owned* owned, size_t num_outputs) {
    const bool allocated = num_outputs == 1 && out[0].data == nullptr && allocates_on_ >= 0;
    if (allocated) allocate(in[0], out[0], owned[0]);
    if (num_outputs != 1 || out[0].data == nullptr) throw Error(JB_ERROR_INVALID_ARGUMENT, "echo: give y a buffer");
#ifdef ECHO_DEVICES
    for (const jb_tensor_view* v : {in, allocated ? in : static_cast<const jb_tensor_view*>(out)})
      if (v->device != JB_DEVICE_CUDA || v->device_id != 0)
        throw Error(JB_ERROR_INPUT, "echo: expected a view of cuda:0, got device " + std::to_string(v->device) + ":" +
                                        std::to_string(v->device_id));
#endif
#ifdef ECHO_PINNED
    last_x_.store(in[0].data);
    plugin::log(JB_LOG_VERBOSE, "echo", std::string("x ") + device_name(in[0]) + ", y " + device_name(out[0]));
#endif
    twice(in, out);
  }
#ifdef ECHO_DEVICES
  std::vector<Device> devices() const { return {Device::cuda(0)}; }
#endif
#ifdef ECHO_PINNED
  plugin::HostBlock allocate_host(size_t nbytes) {
    struct Block {
      void* data;
      size_t nbytes;
    };
    plugin::HostBlock block;
    block.data = std::aligned_alloc(64, (nbytes + 64) / 64 * 64);
    if (block.data == nullptr) throw Error(JB_ERROR_RUNTIME, "echo: out of memory");
    block.device = Device::cuda_pinned();  // as a CUDA plugin's pinned memory says
    block.owned = {new Block{block.data, nbytes}, [](void* h) {
                     auto* b = static_cast<Block*>(h);
                     plugin::log(JB_LOG_INFO, "echo", "released " + std::to_string(b->nbytes) + " bytes");
                     std::free(b->data);
                     delete b;
                   }};
    return block;
  }
#endif
#ifdef ECHO_ASYNC
  bool async_native() const { return true; }
  void run_async(const jb_tensor_view* in, const int32_t*, jb_tensor_view* out, jb_plugin_owned*, size_t num_outputs,
                 plugin::RunAsyncDone done, void* user_data) {
    if (num_outputs != 1 || out[0].data == nullptr) throw Error(JB_ERROR_INVALID_ARGUMENT, "echo: give y a buffer");
#ifdef ECHO_PINNED
    last_x_.store(in[0].data);
#endif
    std::thread([in, out, done, user_data] {
      try {
        twice(in, out);
      } catch (const Error& e) {
        done(user_data, static_cast<jb_status>(e.code()), e.backend_code(), e.what());
        return;
      }
      done(user_data, JB_OK, 0, nullptr);
    }).detach();
  }
#endif

 private:
  // y in host memory of its own, labelled as output_device=cuda asked (the tests never read it as GPU memory).
  void allocate(const jb_tensor_view& x, jb_tensor_view& y, jb_plugin_owned& owned) const {
    const size_t nbytes = static_cast<size_t>(x.shape[0]) * sizeof(float);
    y = x;
    y.data = std::calloc(1, nbytes + 1);
    y.device = JB_DEVICE_CUDA;
    y.device_id = astray_ ? 3 : allocates_on_;
    owned.holder = new std::pair<void*, size_t>(y.data, nbytes);
    owned.release = [](void* h) {
      auto* block = static_cast<std::pair<void*, size_t>*>(h);
      plugin::log(JB_LOG_INFO, "echo", "released " + std::to_string(block->second) + " bytes");
      std::free(block->first);
      delete block;
    };
  }

  static const char* device_name(const jb_tensor_view& v) {
    return v.device == JB_DEVICE_CPU ? "cpu" : v.device == JB_DEVICE_CUDA_PINNED ? "cuda_pinned" : "cuda";
  }

  static void twice(const jb_tensor_view* in, jb_tensor_view* out) {
    const auto* x = static_cast<const float*>(in[0].data);
    auto* y = static_cast<float*>(out[0].data);
    if (in[0].shape[0] > 0 && x[0] < 0) throw Error(JB_ERROR_INPUT, "echo: negative x");
    for (int64_t i = 0; i < in[0].shape[0]; ++i) y[i] = 2 * x[i];
  }

  std::vector<Info> inputs_{{"x"}}, outputs_{{"y"}};
  std::string received_;
  int allocates_on_ = -1;  // output_device=cuda: the GPU it says y lies on
  bool astray_ = false;    // colour=astray: a GPU it does not name
  std::vector<const char*> keys_, values_;
  std::atomic<const void*> last_x_{nullptr};  // where run last read x
};

#ifdef ECHO_DEVICES
constexpr const char* kOptions[] = {"intra_op_threads", "colour", "output_device", nullptr};
#else
constexpr const char* kOptions[] = {"intra_op_threads", "colour", nullptr};
#endif

jb_plugin_api make_api() {
  jb_plugin_api api = plugin::Table<Echo>::api(JB_STR(ECHO_NAME), kOptions);
#ifdef ECHO_ABI2
  api.abi_version = 2;
  api.struct_size = 0;  // padding in ABI 2
  api.options = nullptr;
#endif
#ifdef ECHO_ABI3
  api.abi_version = 3;
#endif
#ifdef ECHO_BEFORE_ASYNC
  api.struct_size = offsetof(jb_plugin_api, async_native);
#endif
  return api;
}

const jb_plugin_api kApi = make_api();

}  // namespace

extern "C" JB_PLUGIN_EXPORT const jb_plugin_api* jb_plugin_init(const jb_plugin_host* host) {
  return jb::plugin::start(host) ? &kApi : nullptr;
}
