#pragma once

#include <string>

#include <caf/settings.hpp>
#include <pybind11/pybind11.h>

namespace mycelium::python {

/// A Python dict (str keys; values bool, int, float, str, list, dict) as
/// CAF settings, the form service parameters take in C++ and in
/// topology.toml. Throws `pybind11::type_error` naming the key of a value
/// of another type. Needs the GIL.
caf::settings to_settings(const pybind11::dict& d, const std::string& where = "params");

/// CAF settings as a Python dict (timespans become float seconds, atoms
/// str). Needs the GIL.
pybind11::dict to_dict(const caf::settings& s);

} // namespace mycelium::python
