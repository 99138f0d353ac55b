# mycelium_add_component(<name>
#     SOURCES <src>...            # .cpp files of the library
#     [PUBLIC_DEPS <target>...]   # linked PUBLIC (part of the interface)
#     [PRIVATE_DEPS <target>...]
#     [TESTS <test.cpp>...])      # doctest files, one executable per component
#
# Creates library `mycelium_<name>` with alias `mycelium::<name>`, exports it
# as `mycelium::<name>` from the installed package, and registers its unit
# tests as `mycelium_<name>_test` with CTest (label `unit`).
function(mycelium_add_component name)
  cmake_parse_arguments(arg "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS;TESTS" ${ARGN})
  set(lib mycelium_${name})
  add_library(${lib} ${arg_SOURCES})
  add_library(mycelium::${name} ALIAS ${lib})
  set_target_properties(${lib} PROPERTIES EXPORT_NAME ${name}
                                          POSITION_INDEPENDENT_CODE ON)
  target_include_directories(${lib} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${lib} PUBLIC ${arg_PUBLIC_DEPS}
                               PRIVATE ${arg_PRIVATE_DEPS}
                                       $<BUILD_INTERFACE:mycelium_build_flags>)
  if(MYCELIUM_SANITIZER_LINK_OPTIONS)
    target_link_options(${lib} INTERFACE ${MYCELIUM_SANITIZER_LINK_OPTIONS})
  endif()
  install(TARGETS ${lib} EXPORT mycelium-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  if(arg_TESTS AND MYCELIUM_BUILD_TESTS)
    mycelium_add_test(${name} SOURCES ${arg_TESTS} DEPS ${lib})
  endif()
endfunction()

# mycelium_add_test(<name> SOURCES <files>... DEPS <targets>... [LABELS ...])
# One doctest executable `mycelium_<name>_test`, registered with CTest.
function(mycelium_add_test name)
  cmake_parse_arguments(arg "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  set(exe mycelium_${name}_test)
  add_executable(${exe} ${arg_SOURCES} ${PROJECT_SOURCE_DIR}/tests/doctest_main.cpp)
  target_link_libraries(${exe} PRIVATE ${arg_DEPS} doctest::doctest mycelium_build_flags)
  target_compile_definitions(${exe} PRIVATE
    MYCELIUM_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
  if(NOT arg_LABELS)
    set(arg_LABELS unit)
  endif()
  add_test(NAME ${exe} COMMAND ${exe})
  set_tests_properties(${exe} PROPERTIES LABELS "${arg_LABELS}" TIMEOUT 300)
  mycelium_sanitizer_env(${exe})
endfunction()
