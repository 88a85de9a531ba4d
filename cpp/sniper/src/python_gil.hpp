// Releases the GIL around a C++ call when the calling thread holds it. Python's symbols are looked up
// at run time (dlsym), so a job with no Python in the process needs no libpython.
#pragma once

namespace jb::sniper {

class GilRelease {
 public:
  explicit GilRelease(bool enabled);
  ~GilRelease();
  // Looks Python up again (once at start-up it may not be there yet; a plugin can bring it later):
  // called after a session opens, never per event.
  static void find_python();
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  void* state_ = nullptr;  // the PyThreadState saved, restored on scope exit
};

}  // namespace jb::sniper
