// _mycelium_bridge_probe: the Python bridge (mycelium/python/message_bridge.hpp)
// with the test schema's C++ types compiled in, as a Python extension, so
// that tests/python/test_bridge.py can check it against the pure-Python
// codec in a plain Python process: what C++ makes of a Python object, and
// what Python object C++ makes of a struct.
//
//   bridged(cls) -> bool          the bridge takes cls (digest and fields match)
//   to_cpp(obj) -> bytes          the struct made from obj, encoded by C++
//                                 (raises EncodeError as encode() would)
//   from_cpp(cls, payload) -> obj the struct decoded by C++ from payload,
//                                 made into a cls object by the bridge
//   refused(texts, collections)   what the bridge makes of C++ values that the
//     -> list                     Python decoder would refuse (a string over
//                                 its max, one not UTF-8, a vector over its
//                                 max, an undeclared enum value): None for
//                                 each, so the runtime hands the bytes over
//
// Thread-safety: call with the GIL held (as Python does).
#include <vector>

#include <pybind11/pybind11.h>

#include "mycelium/codec.hpp"
#include "mycelium/python/message_bridge.hpp"
#include "test_messages.hpp"

namespace py = pybind11;
namespace mp = mycelium::python;
namespace tmsg = mycelium::test;

namespace {

const mp::schema_bridge& bridge() {
  static const mp::schema_bridge* b = [] {
    return mp::register_bridge<tmsg::detail::message_types>(tmsg::descriptor());
  }();
  return *b;
}

const mp::class_info& bound(py::handle cls) {
  auto* ci = mp::bind_class(cls.ptr(), bridge());
  if (ci == nullptr)
    throw py::type_error("the bridge does not take this class");
  return *ci;
}

} // namespace

PYBIND11_MODULE(_mycelium_bridge_probe, m) {
  m.def("bridged", [](py::handle cls) { return mp::bind_class(cls.ptr(), bridge()) != nullptr; });
  m.def("to_cpp", [](py::handle obj) {
    auto& ci = bound(py::reinterpret_borrow<py::object>(obj).get_type());
    caf::message msg;
    try {
      msg = ci.entry->from_python(obj.ptr(), ci);
    } catch (const mp::encode_failure& f) {
      mp::raise_encode_error(obj.ptr(), f);
    }
    std::vector<uint8_t> out;
    uint32_t type_id = 0;
    if (!tmsg::descriptor().encode(msg, out, type_id) || type_id != ci.type_id)
      throw std::runtime_error("the bridge made a message the schema cannot encode");
    return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
  });
  m.def("from_cpp", [](py::handle cls, const py::bytes& payload) -> py::object {
    auto& ci = bound(cls);
    std::string bytes = payload;
    caf::message msg;
    auto e = tmsg::descriptor().decode(ci.type_id, reinterpret_cast<const uint8_t*>(bytes.data()),
                                     bytes.size(), msg);
    if (e != mycelium::errc::none)
      throw py::value_error(std::string{"C++ does not decode it: "} + mycelium::to_string(e));
    return py::reinterpret_steal<py::object>(ci.entry->to_python(msg, ci));
  });
  m.def("refused", [](py::handle texts_cls, py::handle collections_cls) {
    auto attempt = [](const mp::class_info& ci, caf::message msg) -> py::object {
      try {
        return py::reinterpret_steal<py::object>(ci.entry->to_python(msg, ci));
      } catch (const mp::convert_failure&) {
        return py::none();
      }
    };
    auto& texts = bound(texts_cls);
    auto& collections = bound(collections_cls);
    py::list out;
    tmsg::texts long_name;
    long_name.name = std::string(17, 'x');
    out.append(attempt(texts, caf::make_message(long_name)));
    tmsg::texts not_utf8;
    not_utf8.name = "\xff";
    out.append(attempt(texts, caf::make_message(not_utf8)));
    tmsg::collections long_ids;
    long_ids.ids = {1, 2, 3, 4, 5};
    out.append(attempt(collections, caf::make_message(long_ids)));
    tmsg::collections bad_side;
    bad_side.side = static_cast<tmsg::side>(7);
    out.append(attempt(collections, caf::make_message(bad_side)));
    tmsg::texts fine;
    fine.name = "ok";
    out.append(attempt(texts, caf::make_message(fine)));
    return out;
  });
}
