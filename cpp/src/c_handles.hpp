// What the C ABI's opaque handles hold (juno_bridge.h), shared by the files that implement it.
#pragma once

#include "juno_bridge/juno_bridge.h"
#include "juno_bridge/runtime.hpp"
#include "juno_bridge/session.hpp"

struct jb_runtime {
  explicit jb_runtime(int async_threads) : runtime(async_threads) {}
  explicit jb_runtime(jb::Runtime::Executor executor) : runtime(std::move(executor)) {}
  jb::Runtime runtime;
};

struct jb_options {
  jb::SessionOptions options;
  jb_runtime* runtime = nullptr;  // nullptr: the process default
};

// A task handed to a C executor: jb_task_run runs it and frees it.
struct jb_task {
  jb::Runtime::Task task;
};
