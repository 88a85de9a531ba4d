# CMake package config of juno-bridge's SNiPER package, installed beside juno_bridgeConfig.cmake:
#   find_package(Boost REQUIRED COMPONENTS python311)   # SNiPER's config needs it first (your Python)
#   find_package(SNiPER REQUIRED)
#   find_package(juno_bridge_sniper CONFIG REQUIRED)    # juno_bridge_sniper_DIR=$(juno-bridge config --cmake-dir)
#   target_link_libraries(my_alg PRIVATE juno_bridge::sniper)   # ModelAlg, TensorStore
include(CMakeFindDependencyMacro)
find_dependency(juno_bridge CONFIG PATHS "${CMAKE_CURRENT_LIST_DIR}" NO_DEFAULT_PATH)
get_filename_component(_jbs_prefix "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT TARGET SNiPER::SniperKernel)
  set(juno_bridge_sniper_FOUND FALSE)
  set(juno_bridge_sniper_NOT_FOUND_MESSAGE "find_package(SNiPER) first")
  return()
endif()
if(NOT TARGET juno_bridge::sniper)
  add_library(juno_bridge::sniper SHARED IMPORTED)
  set_target_properties(juno_bridge::sniper PROPERTIES
    IMPORTED_LOCATION "${_jbs_prefix}/lib/libJunoBridgeSniper.so"
    IMPORTED_SONAME "libJunoBridgeSniper.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_jbs_prefix}/include"
    INTERFACE_LINK_LIBRARIES "juno_bridge::juno_bridge;SNiPER::SniperKernel")
endif()
set(juno_bridge_sniper_FOUND TRUE)
unset(_jbs_prefix)
