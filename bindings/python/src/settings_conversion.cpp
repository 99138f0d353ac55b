#include "settings_conversion.hpp"

#include <caf/config_value.hpp>

namespace py = pybind11;

namespace mycelium::python {

namespace {

caf::config_value to_value(const py::handle& v, const std::string& where) {
  if (py::isinstance<py::bool_>(v))
    return caf::config_value{v.cast<bool>()};
  if (py::isinstance<py::int_>(v))
    return caf::config_value{v.cast<int64_t>()};
  if (py::isinstance<py::float_>(v))
    return caf::config_value{v.cast<double>()};
  if (py::isinstance<py::str>(v))
    return caf::config_value{v.cast<std::string>()};
  if (py::isinstance<py::dict>(v))
    return caf::config_value{to_settings(v.cast<py::dict>(), where)};
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
    caf::config_value::list xs;
    size_t i = 0;
    for (auto x : v)
      xs.push_back(to_value(x, where + "[" + std::to_string(i++) + "]"));
    return caf::config_value{std::move(xs)};
  }
  throw py::type_error(where + ": a " + std::string{py::str(py::type::of(v).attr("__name__"))}
                       + " cannot be a parameter (use bool, int, float, str, list or dict)");
}

py::object to_object(const caf::config_value& v) {
  if (auto* b = caf::get_if<bool>(&v))
    return py::bool_(*b);
  if (auto* i = caf::get_if<int64_t>(&v))
    return py::int_(*i);
  if (auto* d = caf::get_if<double>(&v))
    return py::float_(*d);
  if (auto* s = caf::get_if<std::string>(&v))
    return py::str(*s);
  if (auto* a = caf::get_if<caf::atom_value>(&v))
    return py::str(caf::to_string(*a));
  if (auto* t = caf::get_if<caf::timespan>(&v))
    return py::float_(std::chrono::duration<double>(*t).count());
  if (auto* xs = caf::get_if<caf::config_value::list>(&v)) {
    py::list out;
    for (auto& x : *xs)
      out.append(to_object(x));
    return std::move(out);
  }
  if (auto* d = caf::get_if<caf::config_value::dictionary>(&v))
    return to_dict(*d);
  return py::str(caf::to_string(v));
}

} // namespace

caf::settings to_settings(const py::dict& d, const std::string& where) {
  caf::settings out;
  for (auto kv : d) {
    if (!py::isinstance<py::str>(kv.first))
      throw py::type_error(where + ": keys must be str");
    auto key = kv.first.cast<std::string>();
    out.emplace(key, to_value(kv.second, where + "." + key));
  }
  return out;
}

py::dict to_dict(const caf::settings& s) {
  py::dict out;
  for (auto& [k, v] : s)
    out[py::str(k)] = to_object(v);
  return out;
}

} // namespace mycelium::python
