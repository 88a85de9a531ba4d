# CMake package config for juno-bridge, installed inside the Python package (juno_bridge/cmake/).
#   find_package(juno_bridge CONFIG REQUIRED)   # with juno_bridge_DIR=$(juno-bridge config --cmake-dir)
#   target_link_libraries(my_alg PRIVATE juno_bridge::juno_bridge)
get_filename_component(_jb_prefix "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT TARGET juno_bridge::juno_bridge)
  add_library(juno_bridge::juno_bridge SHARED IMPORTED)
  set_target_properties(juno_bridge::juno_bridge PROPERTIES
    IMPORTED_LOCATION "${_jb_prefix}/lib/libjuno_bridge.so"
    IMPORTED_SONAME "libjuno_bridge.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_jb_prefix}/include"
    INTERFACE_COMPILE_FEATURES cxx_std_17)
endif()
set(juno_bridge_INCLUDE_DIRS "${_jb_prefix}/include")
set(juno_bridge_LIBRARIES juno_bridge::juno_bridge)
set(juno_bridge_FOUND TRUE)
unset(_jb_prefix)
