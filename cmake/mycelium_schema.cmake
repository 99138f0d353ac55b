# mycelium_add_schema(<target> SCHEMA <schema.toml> [HEADER <name.hpp>])
#
# Runs `mycelium-codegen` on a schema at build time and makes an INTERFACE
# target <target> whose include directory holds the generated C++ header
# (default name: <schema stem>.hpp; may include a sub-directory, e.g.
# HEADER my/pkg/messages.hpp). Link it to use the message types:
#
#   mycelium_add_schema(my_messages SCHEMA messages.toml)
#   target_link_libraries(app PRIVATE my_messages mycelium::actors)
#   // #include "messages.hpp"
#
# Works in the Mycelium source tree and from an installed package
# (find_package(mycelium) exports the generator as mycelium::codegen).
function(mycelium_add_schema target)
  cmake_parse_arguments(arg "" "SCHEMA;HEADER" "" ${ARGN})
  if(NOT arg_SCHEMA)
    message(FATAL_ERROR "mycelium_add_schema(${target}): SCHEMA <file> is required")
  endif()
  get_filename_component(schema "${arg_SCHEMA}" ABSOLUTE)
  if(NOT arg_HEADER)
    get_filename_component(stem "${schema}" NAME_WE)
    set(arg_HEADER "${stem}.hpp")
  endif()
  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}_generated")
  set(out "${out_dir}/${arg_HEADER}")
  get_filename_component(out_parent "${out}" DIRECTORY)
  file(MAKE_DIRECTORY "${out_parent}") # HEADER may name a sub-directory
  add_custom_command(
    OUTPUT "${out}"
    COMMAND mycelium::codegen generate --lang cpp --output "${out}" "${schema}"
    DEPENDS "${schema}" mycelium::codegen
    COMMENT "mycelium-codegen: ${arg_SCHEMA} -> ${arg_HEADER}"
    VERBATIM)
  add_custom_target(${target}_codegen DEPENDS "${out}")
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_codegen)
  target_include_directories(${target} INTERFACE "${out_dir}")
  target_link_libraries(${target} INTERFACE mycelium::runtime)
endfunction()
