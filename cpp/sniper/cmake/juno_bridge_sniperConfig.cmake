# Kept for projects written against the separate package name: find_package(juno_bridge_sniper CONFIG)
# is find_package(juno_bridge CONFIG COMPONENTS sniper), the one package with its sniper component.
include(CMakeFindDependencyMacro)
find_dependency(juno_bridge CONFIG COMPONENTS sniper PATHS "${CMAKE_CURRENT_LIST_DIR}" NO_DEFAULT_PATH)
