# cmake -P driver of the test mycelium_install_consumer:
#  1. `cmake --install` the main build tree into a fresh prefix,
#  2. configure tests/install_consumer/project against that prefix only
#     (same generator and compiler as the main build),
#  3. build it (this runs the installed mycelium-codegen) and
#  4. run it: it must print OK and exit 0.
#
# Variables: BUILD_DIR PREFIX SOURCE_DIR WORK_DIR GENERATOR MAKE_PROGRAM
#            CXX_COMPILER BUILD_TYPE
cmake_minimum_required(VERSION 3.20)

foreach(v BUILD_DIR PREFIX SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "run_install_consumer.cmake: -D${v}=... is required")
  endif()
endforeach()

# Runs a step; on failure prints its output and stops with a clear message.
function(step name)
  message(STATUS "[install_consumer] ${name}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(step_output "${out}" PARENT_SCOPE)
  if(NOT rc EQUAL 0)
    message("${out}")
    message(FATAL_ERROR "[install_consumer] FAIL: ${name} failed (exit ${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${PREFIX}" "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(config_args)
if(BUILD_TYPE)
  set(config_args --config ${BUILD_TYPE})
endif()

# 1. install
step("install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${PREFIX}" ${config_args})
file(GLOB_RECURSE config_file "${PREFIX}/*/mycelium-config.cmake")
if(NOT config_file)
  message(FATAL_ERROR "[install_consumer] FAIL: no mycelium-config.cmake installed under ${PREFIX}")
endif()

# 2. configure the consumer against the prefix only (no package registry, no
#    system-wide Mycelium).
set(gen_args -G "${GENERATOR}")
if(MAKE_PROGRAM)
  list(APPEND gen_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
step("configure consumer" ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}"
     ${gen_args}
     -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
     -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
     -DCMAKE_PREFIX_PATH=${PREFIX}
     -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
     -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
message("${step_output}")
string(REGEX MATCH "consumer: mycelium [^\n]* from ([^\n]*)" _ "${step_output}")
set(found_dir "${CMAKE_MATCH_1}")
file(REAL_PATH "${PREFIX}" real_prefix)
if(found_dir)
  file(REAL_PATH "${found_dir}" found_dir)
endif()
string(FIND "${found_dir}" "${real_prefix}/" pos)
if(NOT pos EQUAL 0)
  message(FATAL_ERROR "[install_consumer] FAIL: the consumer found mycelium in "
                      "'${found_dir}', not in the install prefix ${real_prefix}")
endif()

# 3. build (runs the installed mycelium-codegen on consumer.toml)
step("build consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}" --parallel 1 ${config_args})

# 4. run
set(exe "${WORK_DIR}/consumer")
if(NOT EXISTS "${exe}" AND BUILD_TYPE)
  set(exe "${WORK_DIR}/${BUILD_TYPE}/consumer")
endif()
execute_process(COMMAND "${exe}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "^OK\n")
  message(FATAL_ERROR "[install_consumer] FAIL: consumer exited ${rc}, expected OK and 0")
endif()
# 5. the node binary lists the service of its static library
execute_process(COMMAND "${WORK_DIR}/consumer_node" --list-types RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "consumer.ticker")
  message(FATAL_ERROR "[install_consumer] FAIL: consumer_node --list-types exited ${rc} "
                      "without consumer.ticker (a registration lost in static linking?): ${out}${err}")
endif()
message(STATUS "[install_consumer] PASS: installed package found, schema generated, round "
               "trip OK, node binary registers its static library's service")
