// The `_mycelium_core` extension module: the C++ runtime inside a Python
// process (`import mycelium` then `mycelium.Node(...)`).
#include <pybind11/pybind11.h>

#include "core_module.hpp"
#include "python_host.hpp"

PYBIND11_MODULE(_mycelium_core, m) {
  mycelium::python::register_python_family();
  mycelium::python::define_core(m, false);
}
