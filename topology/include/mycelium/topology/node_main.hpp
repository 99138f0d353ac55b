#pragma once

#include "mycelium/codec.hpp"

namespace mycelium {

/// The `main` of a node binary: every C++ service registered in the
/// executable (MYCELIUM_REGISTER_SERVICE) can run, and the topology decides
/// which ones run in this process and how they are linked. A project gets
/// the binary without writing a main through CMake:
///
///     mycelium_add_node(my_node SCHEMA my_messages SOURCES a.cpp b.cpp)
///
/// Command line (see `--help`):
///   --topology FILE --node NAME   run node NAME of the topology
///   --list-types                  print the registered service types
///   --describe                    start the node's services without links
///                                 and print what each subscribes to
///                                 ("service NAME TYPE,TYPE" lines)
///   --control-fd N                (set by mycelium-run) the control channel
///
/// Exit codes: 0 clean stop, 2 bad command line or topology, 3 a service or
/// link failed to start, 4 peers not reached in time, 5 the supervisor gave
/// up on a service, 6 the launcher went away.
int node_main(int argc, char** argv, const schema_descriptor& schema);

} // namespace mycelium
