// HitsReaderAlg: reads event files of sparse PMT hits (the HDF5 layout `juno-bridge toymc --out` writes,
// documented in juno_bridge/hits_file.py) and puts each event's dense [1, 2, 17612] float32 tensor
// into the store with the core's scatter (channel 0 nPE summed, channel 1 first-hit time).
//
// Properties: Files (the files, read in order), Output ("pmt": the store key), Truth ("truth": store
// key of the [1, 4] vertex x, y, z (m) and energy (MeV) when the file has them; "" for none), Empty
// (0.0: the value of dark PMTs). When the files end, the task stops.
#include <juno_bridge/hits.hpp>
#include <juno_bridge/sniper/TensorStore.h>

#include <SniperKernel/AlgBase.h>
#include <SniperKernel/AlgFactory.h>
#include <SniperKernel/ExecUnit.h>

#include <hdf5.h>

#include <algorithm>
#include <exception>
#include <string>
#include <vector>

namespace {

// HDF5 prints its error stack by default; the messages here say what went wrong instead.
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

class Handle {
 public:
  Handle(hid_t id = -1, herr_t (*close)(hid_t) = nullptr) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    std::swap(id_, o.id_);
    std::swap(close_, o.close_);
    return *this;
  }
  ~Handle() {
    if (id_ >= 0 && close_) close_(id_);
  }
  operator hid_t() const { return id_; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

std::runtime_error file_error(const std::string& path, const std::string& what) {
  return std::runtime_error("hits file '" + path + "': " + what);
}

class HitsFile {
 public:
  explicit HitsFile(const std::string& path) : path_(path) {
    QuietHdf5 quiet;
    file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (file_ < 0) throw file_error(path, "cannot open it as HDF5 (missing or not an HDF5 file)");
    offsets_ = read_all<int64_t>("offsets", H5T_NATIVE_INT64);
    if (offsets_.empty() || offsets_.front() != 0)
      throw file_error(path, "'offsets' must start at 0 and hold events + 1 entries");
    pmt_ = dataset("pmt_id");
    npe_ = dataset("npe");
    time_ = dataset("time");
    const auto hits = length(pmt_);
    if (length(npe_) != hits || length(time_) != hits || static_cast<hsize_t>(offsets_.back()) != hits)
      throw file_error(path, "pmt_id, npe, time and the last offset disagree on the number of hits");
    if (H5Lexists(file_, "vertex", H5P_DEFAULT) > 0 && H5Lexists(file_, "energy", H5P_DEFAULT) > 0) {
      vertex_ = read_all<float>("vertex", H5T_NATIVE_FLOAT);
      energy_ = read_all<float>("energy", H5T_NATIVE_FLOAT);
      if (vertex_.size() != 3 * events() || energy_.size() != events())
        throw file_error(path, "vertex [N, 3] and energy [N] must match the events");
    }
  }

  size_t events() const { return offsets_.size() - 1; }
  bool has_truth() const { return !energy_.empty(); }
  const float* vertex(size_t i) const { return vertex_.data() + 3 * i; }
  float energy(size_t i) const { return energy_[i]; }

  struct Hits {
    const int32_t* pmt;
    const float* npe;
    const float* time;
    size_t count;
  };

  // Event i's hits, read with those of the next events in one block (HDF5's cost is per read, not
  // per hit); valid until the next call.
  Hits hits(size_t i) {
    if (i < block_begin_ || i >= block_end_) load_block(i);
    const size_t first = static_cast<size_t>(offsets_[i] - offsets_[block_begin_]);
    const size_t count = static_cast<size_t>(offsets_[i + 1] - offsets_[i]);
    return {pmt_buf_.data() + first, npe_buf_.data() + first, time_buf_.data() + first, count};
  }

 private:
  static constexpr size_t kBlockEvents = 64;

  void load_block(size_t i) {
    block_begin_ = i;
    block_end_ = std::min(events(), i + kBlockEvents);
    for (size_t e = block_begin_; e < block_end_; ++e)
      if (offsets_[e + 1] < offsets_[e]) throw file_error(path_, "offsets decrease at event " + std::to_string(e));
    const hsize_t begin = static_cast<hsize_t>(offsets_[block_begin_]);
    const hsize_t count = static_cast<hsize_t>(offsets_[block_end_]) - begin;
    pmt_buf_.resize(count);
    npe_buf_.resize(count);
    time_buf_.resize(count);
    if (count == 0) return;
    slab(pmt_, "pmt_id", H5T_NATIVE_INT32, begin, count, pmt_buf_.data());
    slab(npe_, "npe", H5T_NATIVE_FLOAT, begin, count, npe_buf_.data());
    slab(time_, "time", H5T_NATIVE_FLOAT, begin, count, time_buf_.data());
  }

  Handle dataset(const char* name) const {
    if (H5Lexists(file_, name, H5P_DEFAULT) <= 0)
      throw file_error(path_, std::string("no dataset '") + name + "' (expected offsets, pmt_id, npe, time)");
    Handle d(H5Dopen2(file_, name, H5P_DEFAULT), H5Dclose);
    if (d < 0) throw file_error(path_, std::string("cannot open dataset '") + name + "'");
    return d;
  }

  static hsize_t length(hid_t d) {
    Handle space(H5Dget_space(d), H5Sclose);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    return n < 0 ? 0 : static_cast<hsize_t>(n);
  }

  template <class T>
  std::vector<T> read_all(const char* name, hid_t type) const {
    Handle d = dataset(name);
    std::vector<T> out(length(d));
    if (!out.empty() && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
      throw file_error(path_, std::string("cannot read '") + name + "'");
    return out;
  }

  void slab(hid_t d, const char* name, hid_t type, hsize_t begin, hsize_t count, void* out) const {
    QuietHdf5 quiet;
    Handle file_space(H5Dget_space(d), H5Sclose);
    Handle memory(H5Screate_simple(1, &count, nullptr), H5Sclose);
    if (H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &begin, nullptr, &count, nullptr) < 0 ||
        H5Dread(d, type, memory, file_space, H5P_DEFAULT, out) < 0)
      throw file_error(path_, std::string("cannot read '") + name + "' hits " + std::to_string(begin) + ".." +
                                  std::to_string(begin + count));
  }

  std::string path_;
  Handle file_, pmt_, npe_, time_;
  std::vector<int64_t> offsets_;
  std::vector<float> vertex_, energy_;
  size_t block_begin_ = 0, block_end_ = 0;  // the events whose hits the buffers hold
  std::vector<int32_t> pmt_buf_;
  std::vector<float> npe_buf_, time_buf_;
};

}  // namespace

class HitsReaderAlg : public AlgBase {
 public:
  explicit HitsReaderAlg(const std::string& name) : AlgBase(name) {
    declProp("Files", m_files);
    declProp("Output", m_output);
    declProp("Truth", m_truth);
    declProp("Empty", m_empty);
  }

  bool initialize() override {
    if (m_files.empty()) {
      LogError << "HitsReaderAlg '" << m_name << "': the property Files is empty" << std::endl;
      return false;
    }
    // Every file is opened and its layout checked now, so a misspelt or broken file fails the job at
    // initialize, before any other algorithm runs an event.
    size_t events = 0;
    try {
      for (const auto& path : m_files) events += HitsFile(path).events();
    } catch (const std::exception& e) {
      LogError << "HitsReaderAlg '" << m_name << "': " << e.what() << std::endl;
      return false;
    }
    LogInfo << m_files.size() << " file(s), " << events << " events" << std::endl;
    store_ = &jb::sniper::TensorStore::of(this);
    next_file_ = 0;
    event_ = 0;
    total_ = 0;
    file_.reset();
    return true;
  }

  bool execute() override {
    bool more = false;
    try {
      more = advance();
    } catch (const std::exception& e) {
      LogError << "HitsReaderAlg '" << m_name << "': " << e.what() << std::endl;
      return false;
    }
    if (!more) {
      if (total_ == 0) {
        LogError << "HitsReaderAlg '" << m_name << "': the files hold no events" << std::endl;
        return false;
      }
      LogInfo << "the hits files end after " << total_ << " events" << std::endl;
      m_par->stop();  // throws StopRunProcess: nothing more of this event runs
      return true;
    }
    try {
      const HitsFile::Hits hits = file_->hits(event_);
      // Stable storage: the same address every event; the scatter overwrites every PMT.
      float* dense = store_->create<float>(m_output, {1, 2, jb::kLargePmts});
      jb::scatter_hits(hits.pmt, hits.npe, hits.time, hits.count, dense, 2, jb::kLargePmts, m_empty);
      if (!m_truth.empty() && file_->has_truth()) {
        float* truth = store_->create<float>(m_truth, {1, 4});
        const float* v = file_->vertex(event_);
        truth[0] = v[0];
        truth[1] = v[1];
        truth[2] = v[2];
        truth[3] = file_->energy(event_);
      }
      ++event_;
      ++total_;
      return true;
    } catch (const std::exception& e) {
      LogError << "HitsReaderAlg '" << m_name << "': " << e.what() << std::endl;
      return false;
    }
  }

  bool finalize() override {
    file_.reset();
    store_ = nullptr;
    return true;
  }

 private:
  // Moves to the next event, opening the next file when one ends; false when the files end.
  bool advance() {
    while (!file_ || event_ >= file_->events()) {
      if (next_file_ >= m_files.size()) return false;
      file_.reset();
      file_ = std::make_unique<HitsFile>(m_files[next_file_++]);
      event_ = 0;
    }
    return true;
  }

  std::vector<std::string> m_files;
  std::string m_output = "pmt";
  std::string m_truth = "truth";
  float m_empty = 0.0f;

  jb::sniper::TensorStore* store_ = nullptr;
  std::unique_ptr<HitsFile> file_;
  size_t next_file_ = 0, event_ = 0, total_ = 0;
};

DECLARE_ALGORITHM(HitsReaderAlg);
