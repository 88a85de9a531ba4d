# Build flags shared by every juno-bridge target (through the interface target `jb_flags`), the
# sanitizer option, and the AUTO|ON|OFF switch of each backend plugin.

set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_C_STANDARD 11)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
# Every library we build exports only our API (JB_API in the headers); see jb_export_only().
set(CMAKE_C_VISIBILITY_PRESET hidden)
set(CMAKE_CXX_VISIBILITY_PRESET hidden)
set(CMAKE_VISIBILITY_INLINES_HIDDEN ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)

set(JB_SANITIZE "" CACHE STRING
    "Sanitizers for every juno-bridge target: '' (none), 'address' (ASan + UBSan), 'thread' (TSan)")
set_property(CACHE JB_SANITIZE PROPERTY STRINGS "" address thread)

# jb_base_flags: warnings and optimisation; jb_flags: those and the sanitizers (what our targets link).
add_library(jb_base_flags INTERFACE)
target_compile_options(jb_base_flags INTERFACE -Wall -Wextra $<$<COMPILE_LANGUAGE:CXX>:-Wno-unused-parameter>)

# A toolchain that links libstdc++ and libgcc statically (-static-libstdc++ -static-libgcc in LDFLAGS, as
# some HEP releases do): libstdc++ stays static (its symbols local, see jb_export_only), but our libraries
# and programs take the shared libgcc, the unwinder. jb::Error is thrown by the core and caught by its
# callers (the Cython modules, a framework's program): with an unwinder copy in each, the catch aborts
# ("each of the libraries as well as the application itself should use the shared libgcc", GCC's manual
# on -static-libgcc; the copy a static libgcc brings is hidden, so it cannot be shared).
foreach(_jb_flags_var CMAKE_SHARED_LINKER_FLAGS CMAKE_MODULE_LINKER_FLAGS CMAKE_EXE_LINKER_FLAGS)
  if(${_jb_flags_var} MATCHES "(^| )-static-libgcc( |$)")
    string(REGEX REPLACE "(^| )-static-libgcc( |$)" " " ${_jb_flags_var} "${${_jb_flags_var}}")
    message(STATUS "juno-bridge: -static-libgcc dropped from ${_jb_flags_var}: exceptions cross our libraries, "
                   "which needs one unwinder in the process (libgcc_s)")
  endif()
endforeach()
# Without a build type: optimised, no debug information (fast builds; -g0 keeps objects small). A
# sanitizer build has line tables and light optimisation instead: its reports name our files and lines
# (tests/native/sanitize.sh tells our reports from ONNX Runtime's by those paths).
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  if(JB_SANITIZE STREQUAL "")
    target_compile_options(jb_base_flags INTERFACE -O2 -g0)
  else()
    target_compile_options(jb_base_flags INTERFACE -O1 -g1)
  endif()
endif()
add_library(jb_flags INTERFACE)
target_link_libraries(jb_flags INTERFACE jb_base_flags)
# ASan stops at its first report unless ASAN_OPTIONS=halt_on_error=0 (built recoverable so a run can list
# them all); a UBSan report always stops the program.
if(JB_SANITIZE STREQUAL "address")
  set(_jb_sanitize -fsanitize=address,undefined -fsanitize-recover=address -fno-sanitize-recover=undefined
                   -fno-omit-frame-pointer)
elseif(JB_SANITIZE STREQUAL "thread")
  set(_jb_sanitize -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT JB_SANITIZE STREQUAL "")
  message(FATAL_ERROR "JB_SANITIZE='${JB_SANITIZE}': expected '' (none), 'address' or 'thread'")
endif()
if(_jb_sanitize)
  target_compile_options(jb_flags INTERFACE ${_jb_sanitize})
  target_link_options(jb_flags INTERFACE ${_jb_sanitize})
endif()

# jb_export_only(TARGET MAP): TARGET's dynamic symbol table holds only what the version script
# cmake/exports/MAP.map lets through (the core: jb_* and jb::; a plugin: jb_*). Our libraries are loaded
# into processes that carry other copies of libstdc++ (Python with numpy, torch, TensorFlow; a HEP
# release built with its own GCC): a std:: symbol exported by one would be bound by the other.
function(jb_export_only target map)
  set(script "${PROJECT_SOURCE_DIR}/cmake/exports/${map}.map")
  # Symbols of static archives linked in (libstdc++ under -static-libstdc++) stay local to the library.
  target_link_options(${target} PRIVATE "LINKER:--version-script=${script}" "LINKER:--exclude-libs,ALL")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${script}")
endfunction()

# jb_plugin_option(NAME FOUND WHAT): JB_WITH_<NAME> is AUTO|ON|OFF. Sets JB_BUILD_<NAME> to whether the
# plugin is built: AUTO builds it when FOUND; ON without FOUND stops the configure, saying WHAT to install.
# The answer is also a global property JB_BUILD_<NAME> (see jb_plugins_built), and the names of the
# plugins built the global property JB_PLUGINS_BUILT.
function(jb_plugin_option name found what)
  string(TOUPPER "${name}" upper)
  set(mode "${JB_WITH_${upper}}")
  string(TOUPPER "${mode}" mode)
  if(mode STREQUAL "OFF" OR mode STREQUAL "FALSE" OR mode STREQUAL "0" OR mode STREQUAL "NO")
    set(build OFF)
  elseif(mode STREQUAL "AUTO")
    set(build ${found})
    if(NOT found)
      message(STATUS "juno-bridge: the ${name} plugin is not built: ${what}")
    endif()
  elseif(mode STREQUAL "ON" OR mode STREQUAL "TRUE" OR mode STREQUAL "1" OR mode STREQUAL "YES")
    if(NOT found)
      message(FATAL_ERROR "JB_WITH_${upper}=ON but the ${name} plugin cannot be built: ${what}")
    endif()
    set(build ON)
  else()
    message(FATAL_ERROR "JB_WITH_${upper}='${JB_WITH_${upper}}': expected AUTO, ON or OFF")
  endif()
  set(JB_BUILD_${upper} ${build} PARENT_SCOPE)
  set_property(GLOBAL PROPERTY JB_BUILD_${upper} ${build})
  if(build)
    set_property(GLOBAL APPEND PROPERTY JB_PLUGINS_BUILT ${name})
  endif()
endfunction()

# jb_plugins_built(): JB_BUILD_PYTHON, JB_BUILD_TORCH, JB_BUILD_TF and JB_PLUGINS_BUILT in the caller's scope.
macro(jb_plugins_built)
  foreach(_jb_name PYTHON TORCH TF)
    get_property(JB_BUILD_${_jb_name} GLOBAL PROPERTY JB_BUILD_${_jb_name})
  endforeach()
  get_property(JB_PLUGINS_BUILT GLOBAL PROPERTY JB_PLUGINS_BUILT)
endmacro()

# jb_add_plugin(NAME SOURCES...): libjuno_bridge_<NAME>.so beside the core (which dlopens it), installed
# with it. Plugins include "plugin_table.hpp" (cpp/plugins/) or the installed SDK headers (cpp/include/).
function(jb_add_plugin name)
  set(target juno_bridge_${name})
  add_library(${target} MODULE ${ARGN})
  target_include_directories(${target} PRIVATE "${PROJECT_SOURCE_DIR}/cpp/include" "${JB_GENERATED_INCLUDE_DIR}"
                             "${PROJECT_SOURCE_DIR}/cpp/plugins" "${PROJECT_SOURCE_DIR}/third_party/onnxruntime")
  target_link_libraries(${target} PRIVATE jb_flags Threads::Threads)
  set_target_properties(${target} PROPERTIES PREFIX "lib" LIBRARY_OUTPUT_DIRECTORY "${JB_OUTPUT_DIR}"
                                              NO_SONAME OFF)
  target_link_options(${target} PRIVATE "LINKER:-soname,lib${target}.so")
  jb_export_only(${target} plugin)
  install(TARGETS ${target} LIBRARY DESTINATION "${JB_INSTALL_LIBDIR}")
endfunction()
