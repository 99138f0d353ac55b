# mycelium_add_schema(<target> SCHEMA <schema.toml> [HEADER <name.hpp>]
#                     [PYTHON <dir> [PYTHON_MODULE <name>] [NO_NATIVE]])
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
# With PYTHON <dir> (relative to the current binary directory), the same
# custom target also generates the Python module <dir>/<module>.py and its
# type stub <dir>/<module>.pyi (<module>: PYTHON_MODULE, default the schema
# file's stem, which must then be a Python identifier) (`--lang python` / `--lang pyi`;
# they import the `mycelium` package from bindings/python, see
# docs/python.md). The directory is in the target property
# MYCELIUM_PYTHON_DIR, for PYTHONPATH.
#
# With PYTHON, and when Mycelium was built with pybind11, it also builds
# the schema's native module <dir>/<module>_native (target
# <target>_python_native): the generated C++ code as a small Python
# extension, from which a Python process's runtime (`mycelium.Node`) takes
# the schema, so that its links carry the C++ structs and the Python bridge
# converts them, without the pure-Python codec (docs/python.md section 9).
# NO_NATIVE skips it.
#
# Works in the Mycelium source tree and from an installed package
# (find_package(mycelium) exports the generator as mycelium::codegen).
function(mycelium_add_schema target)
  cmake_parse_arguments(arg "NO_NATIVE" "SCHEMA;HEADER;PYTHON;PYTHON_MODULE" "" ${ARGN})
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
  set(py_outputs)
  if(arg_PYTHON)
    get_filename_component(py_dir "${arg_PYTHON}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
    get_filename_component(py_stem "${schema}" NAME_WE)
    if(arg_PYTHON_MODULE)
      set(py_stem "${arg_PYTHON_MODULE}")
    endif()
    if(NOT py_stem MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
      message(FATAL_ERROR "mycelium_add_schema(${target}): '${py_stem}' cannot be a Python module "
                          "name (letters, digits and '_', not starting with a digit): pass "
                          "PYTHON_MODULE <name>")
    endif()
    file(MAKE_DIRECTORY "${py_dir}")
    set(py_outputs "${py_dir}/${py_stem}.py" "${py_dir}/${py_stem}.pyi")
    add_custom_command(
      OUTPUT ${py_outputs}
      COMMAND mycelium::codegen generate --lang python --output "${py_dir}/${py_stem}.py" "${schema}"
      COMMAND mycelium::codegen generate --lang pyi --output "${py_dir}/${py_stem}.pyi" "${schema}"
      DEPENDS "${schema}" mycelium::codegen
      COMMENT "mycelium-codegen: ${arg_SCHEMA} -> ${py_stem}.py, ${py_stem}.pyi"
      VERBATIM)
  endif()
  add_custom_target(${target}_codegen DEPENDS "${out}" ${py_outputs})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_codegen)
  target_include_directories(${target} INTERFACE "${out_dir}")
  target_link_libraries(${target} INTERFACE mycelium::runtime)
  # What mycelium_add_node needs to call <package>::descriptor(): the header
  # and the C++ namespace (the schema's package with '.' as '::').
  file(STRINGS "${schema}" pkg_line REGEX "^[ \t]*package[ \t]*=")
  if(pkg_line)
    string(REGEX REPLACE "^[ \t]*package[ \t]*=[ \t]*\"([^\"]*)\".*" "\\1" pkg "${pkg_line}")
    string(REPLACE "." "::" ns "${pkg}")
    set_target_properties(${target} PROPERTIES
      MYCELIUM_SCHEMA_HEADER "${arg_HEADER}"
      MYCELIUM_SCHEMA_NAMESPACE "${ns}")
  endif()
  if(arg_PYTHON)
    set_target_properties(${target} PROPERTIES MYCELIUM_PYTHON_DIR "${py_dir}")
    if(NOT arg_NO_NATIVE AND TARGET mycelium::python_bridge AND ns)
      _mycelium_add_native_module(${target} "${py_dir}" "${py_stem}" "${arg_HEADER}" "${ns}")
    endif()
  endif()
endfunction()

# The native module of a schema (see mycelium_add_schema): a Python
# extension <py_dir>/<py_stem>_native whose `schema` attribute is a capsule
# of a mycelium::python::native_schema (mycelium/python/native_schema.hpp).
function(_mycelium_add_native_module target py_dir py_stem header ns)
  if(NOT TARGET pybind11::module) # imported targets are per directory
    set(PYBIND11_FINDPYTHON OFF)
    find_package(pybind11 CONFIG REQUIRED)
  endif()
  set(src "${CMAKE_CURRENT_BINARY_DIR}/${target}_native_module.cpp")
  file(GENERATE OUTPUT "${src}" CONTENT
"// Generated by mycelium_add_schema(${target}): the native module of the
// Python module ${py_stem} (mycelium/python/native_schema.hpp).
#include <pybind11/pybind11.h>

#include \"mycelium/python/native_schema.hpp\"
#include \"${header}\"

PYBIND11_MODULE(${py_stem}_native, m) {
  namespace mp = mycelium::python;
  const auto& record = mp::native_schema_of<${ns}::detail::message_types, &${ns}::descriptor>();
  m.doc() = \"The generated C++ code of schema \" + record.descriptor->package
            + \", for mycelium.Node (docs/python.md section 9)\";
  m.attr(\"package\") = record.descriptor->package;
  m.attr(\"digest\") = pybind11::bytes(reinterpret_cast<const char*>(record.descriptor->digest.data()),
                                     record.descriptor->digest.size());
  m.attr(\"schema\") = pybind11::capsule(&record, mp::native_schema_capsule);
}
")
  pybind11_add_module(${target}_python_native MODULE "${src}")
  set_target_properties(${target}_python_native PROPERTIES
    OUTPUT_NAME ${py_stem}_native LIBRARY_OUTPUT_DIRECTORY "${py_dir}")
  target_link_libraries(${target}_python_native PRIVATE ${target} mycelium::python_bridge)
  if(TARGET mycelium_build_flags)
    target_link_libraries(${target}_python_native PRIVATE mycelium_build_flags)
  endif()
endfunction()

# mycelium_add_node(<target> SCHEMA <schema target> SOURCES <src>...
#                   [LIBRARIES <service libraries>...] [PYTHON])
#
# A node binary without a main(): the sources (and libraries) define and
# register C++ services (MYCELIUM_REGISTER_SERVICE); the generated main runs
# mycelium::node_main with the schema of <schema target> (made by
# mycelium_add_schema). Libraries are linked whole, so a registration in a
# static library is never dropped by the linker. mycelium-run starts the
# binary once per node (`--topology FILE --node NAME`). PYTHON embeds a
# Python interpreter (mycelium::python_embed): the node then also runs
# services of type "python:pkg.module:Class" (docs/python.md), and its main
# registers the schema's Python bridge (structs to Python objects and back
# without the codec; docs/python.md section 9).
function(mycelium_add_node target)
  cmake_parse_arguments(arg "PYTHON" "SCHEMA" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT arg_SCHEMA)
    message(FATAL_ERROR "mycelium_add_node(${target}): SCHEMA <target of mycelium_add_schema> is required")
  endif()
  get_target_property(header ${arg_SCHEMA} MYCELIUM_SCHEMA_HEADER)
  get_target_property(ns ${arg_SCHEMA} MYCELIUM_SCHEMA_NAMESPACE)
  if(NOT header OR NOT ns)
    message(FATAL_ERROR "mycelium_add_node(${target}): ${arg_SCHEMA} was not made by mycelium_add_schema (or its schema has no package line)")
  endif()
  set(main "${CMAKE_CURRENT_BINARY_DIR}/${target}_node_main.cpp")
  set(bridge_include "")
  set(bridge_call "")
  if(arg_PYTHON)
    # Python services publish and receive the schema's C++ structs without
    # the codec (docs/python.md section 9).
    set(bridge_include "#include \"mycelium/python/message_bridge.hpp\"\n")
    set(bridge_call "  mycelium::python::register_bridge<${ns}::detail::message_types>(${ns}::descriptor());\n")
  endif()
  file(GENERATE OUTPUT "${main}" CONTENT
"// Generated by mycelium_add_node(${target}): the node binary's main.
#include \"mycelium/topology/node_main.hpp\"
${bridge_include}#include \"${header}\"

int main(int argc, char** argv) {
${bridge_call}  return mycelium::node_main(argc, argv, ${ns}::descriptor());
}
")
  add_executable(${target} ${arg_SOURCES} "${main}")
  target_link_libraries(${target} PRIVATE ${arg_SCHEMA} mycelium::node_main)
  if(arg_PYTHON)
    if(NOT TARGET mycelium::python_embed)
      message(FATAL_ERROR "mycelium_add_node(${target} PYTHON): mycelium was built without "
                          "pybind11, so mycelium::python_embed does not exist (install "
                          "pybind11-dev python3-dev and rebuild mycelium)")
    endif()
    list(APPEND arg_LIBRARIES mycelium::python_embed)
  endif()
  foreach(lib IN LISTS arg_LIBRARIES)
    target_link_libraries(${target} PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,${lib}>")
  endforeach()
endfunction()
