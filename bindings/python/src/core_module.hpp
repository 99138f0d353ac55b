#pragma once

#include <pybind11/pybind11.h>

namespace mycelium::python {

/// Defines the classes and functions of the `_mycelium_core` module (the
/// C++ runtime as Python sees it; docs/python.md section 4) in `m`. The
/// same definitions back the extension module, which a Python process
/// imports, and the embedded module of a C++ node; `embedded` says which.
void define_core(pybind11::module_& m, bool embedded);

} // namespace mycelium::python
