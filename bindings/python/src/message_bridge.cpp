#include "mycelium/python/message_bridge.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include <fmt/format.h>

namespace py = pybind11;

namespace mycelium::python {

// -- registry -------------------------------------------------------------------

bridge_registry& bridge_registry::global() {
  static auto* r = new bridge_registry; // never destroyed: used until exit
  return *r;
}

const schema_bridge* bridge_registry::add(std::unique_ptr<schema_bridge> b) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& x : bridges_)
    if (x->serves(b->descriptor()))
      return x.get(); // in use: never replaced
  bridges_.push_back(std::move(b));
  return bridges_.back().get();
}

const schema_bridge* bridge_registry::find(const schema_descriptor& d) const noexcept {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& x : bridges_)
    if (x->serves(d))
      return x.get();
  return nullptr;
}

// -- errors ---------------------------------------------------------------------

void raise_encode_error(PyObject* obj, const encode_failure& f) {
  // Only on the error path: the codec's own check gives the exact text
  // (a few overflow messages come from `struct` and are not worth copying).
  py::reinterpret_borrow<py::object>(obj).attr("encode")();
  auto errors = py::module_::import("mycelium.errors");
  PyErr_SetObject(errors.attr("EncodeError").ptr(),
                  py::make_tuple(f.path, f.detail).ptr());
  throw py::error_already_set();
}

namespace bridge_detail {

std::string path::str() const {
  std::string out = up != nullptr ? up->str() : std::string{};
  if (name != nullptr)
    out += (out.empty() ? "" : ".") + *name;
  if (index >= 0)
    out += "[" + std::to_string(index) + "]";
  return out;
}

void fail(const path& p, std::string detail) {
  throw encode_failure{p.str(), std::move(detail)};
}

namespace {

/// `type(v).__name__`, as the Python encoder's messages say it.
std::string type_name_of(PyObject* v) {
  ref name{PyType_GetName(Py_TYPE(v))};
  const char* c = name.p != nullptr ? PyUnicode_AsUTF8(name.p) : nullptr;
  if (c == nullptr) {
    PyErr_Clear();
    return Py_TYPE(v)->tp_name;
  }
  return c;
}

/// The text of the pending Python exception (cleared).
std::string take_error_text() {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  std::string text = "?";
  if (value != nullptr) {
    ref s{PyObject_Str(value)};
    if (s.p != nullptr)
      if (const char* c = PyUnicode_AsUTF8(s.p))
        text = c;
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  PyErr_Clear();
  return text;
}

std::string str_of(PyObject* v, bool repr) {
  ref s{repr ? PyObject_Repr(v) : PyObject_Str(v)};
  const char* c = s.p != nullptr ? PyUnicode_AsUTF8(s.p) : nullptr;
  if (c == nullptr) {
    PyErr_Clear();
    return "?";
  }
  return c;
}

template <class T>
constexpr bool is_int = std::is_integral_v<T> && !std::is_same_v<T, bool>;

/// The f32 bits of a NaN as the Python codec keeps them (codec.f32_bits).
uint32_t f32_nan_bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  uint32_t mantissa = static_cast<uint32_t>((b >> 29) & 0x7FFFFF);
  if (mantissa == 0)
    mantissa = 0x400000;
  return static_cast<uint32_t>((b >> 63) << 31) | 0xFFu << 23 | mantissa;
}

/// A float's value as a double, NaN payloads kept (codec.f32_from_bits).
double f32_to_double(float f) {
  if (!std::isnan(f))
    return static_cast<double>(f);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  uint64_t d = uint64_t{bits >> 31} << 63 | uint64_t{0x7FF} << 52
               | uint64_t{bits & 0x7FFFFF} << 29;
  double out;
  std::memcpy(&out, &d, sizeof out);
  return out;
}

} // namespace

template <class T>
void read_scalar(PyObject* v, T& x, const std::string& spelling, const path& p) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!PyBool_Check(v))
      fail(p, "bool expected, got " + type_name_of(v));
    x = v == Py_True;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!PyFloat_Check(v) && !PyLong_Check(v))
      fail(p, spelling + " expects a float, got " + type_name_of(v));
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) {
      auto why = take_error_text();
      fail(p, str_of(v, true) + " does not fit in " + spelling + ": " + why);
    }
    if constexpr (std::is_same_v<T, float>) {
      if (std::isnan(d)) {
        uint32_t bits = f32_nan_bits(d);
        std::memcpy(&x, &bits, sizeof bits);
        return;
      }
      x = static_cast<float>(d);
      if (std::isinf(x) && !std::isinf(d))
        fail(p, str_of(v, true) + " does not fit in " + spelling
                  + ": float too large to pack with f format");
    } else {
      x = d;
    }
  } else {
    static_assert(is_int<T>);
    if (!PyLong_Check(v))
      fail(p, spelling + " expects an int, got " + type_name_of(v));
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(v, &overflow);
    bool ok;
    if (overflow == 0) {
      ok = s >= static_cast<long long>(std::numeric_limits<T>::min())
           && (s < 0 || static_cast<unsigned long long>(s)
                          <= static_cast<unsigned long long>(std::numeric_limits<T>::max()));
      x = static_cast<T>(s);
    } else if (overflow > 0 && std::is_same_v<T, uint64_t>) {
      unsigned long long u = PyLong_AsUnsignedLongLong(v);
      ok = !(u == static_cast<unsigned long long>(-1) && PyErr_Occurred());
      PyErr_Clear();
      x = static_cast<T>(u);
    } else {
      ok = false;
    }
    if (!ok)
      fail(p, fmt::format("{} is out of the range of {} ({}..{})", str_of(v, false), spelling,
                          +std::numeric_limits<T>::min(), +std::numeric_limits<T>::max()));
  }
}

template <class T>
PyObject* make_scalar(T x) {
  PyObject* out;
  if constexpr (std::is_same_v<T, bool>) {
    out = x ? Py_True : Py_False;
    Py_INCREF(out);
    return out;
  } else if constexpr (std::is_same_v<T, float>) {
    out = PyFloat_FromDouble(f32_to_double(x));
  } else if constexpr (std::is_same_v<T, double>) {
    out = PyFloat_FromDouble(x);
  } else if constexpr (std::is_signed_v<T>) {
    out = PyLong_FromLongLong(x);
  } else {
    out = PyLong_FromUnsignedLongLong(x);
  }
  if (out == nullptr)
    throw py::error_already_set();
  return out;
}

#define MYCELIUM_BRIDGE_SCALAR(T)                                                        \
  template void read_scalar<T>(PyObject*, T&, const std::string&, const path&);         \
  template PyObject* make_scalar<T>(T);
MYCELIUM_BRIDGE_SCALAR(bool)
MYCELIUM_BRIDGE_SCALAR(uint8_t)
MYCELIUM_BRIDGE_SCALAR(uint16_t)
MYCELIUM_BRIDGE_SCALAR(uint32_t)
MYCELIUM_BRIDGE_SCALAR(uint64_t)
MYCELIUM_BRIDGE_SCALAR(int8_t)
MYCELIUM_BRIDGE_SCALAR(int16_t)
MYCELIUM_BRIDGE_SCALAR(int32_t)
MYCELIUM_BRIDGE_SCALAR(int64_t)
MYCELIUM_BRIDGE_SCALAR(float)
MYCELIUM_BRIDGE_SCALAR(double)
#undef MYCELIUM_BRIDGE_SCALAR

void read_string(PyObject* v, std::string& x, const field_info& f, const path& p) {
  if (!PyUnicode_Check(v))
    fail(p, "str expected, got " + type_name_of(v));
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(v, &n);
  if (s == nullptr)
    fail(p, "not encodable as UTF-8: " + take_error_text());
  if (static_cast<size_t>(n) > f.bound)
    fail(p, fmt::format("{} UTF-8 bytes, the schema allows at most {}", n, f.bound));
  x.assign(s, static_cast<size_t>(n));
}

PyObject* make_string(const std::string& x, const field_info& f) {
  if (x.size() > f.bound)
    throw convert_failure{};
  PyObject* out = PyUnicode_DecodeUTF8(x.data(), static_cast<Py_ssize_t>(x.size()), nullptr);
  if (out == nullptr) {
    PyErr_Clear();
    throw convert_failure{}; // not UTF-8: the decoder names the byte
  }
  return out;
}

void read_bytes(PyObject* v, std::vector<uint8_t>& x, const field_info& f, const path& p) {
  if (PyBytes_Check(v)) {
    auto n = static_cast<size_t>(PyBytes_GET_SIZE(v));
    if (n > f.bound)
      fail(p, fmt::format("{} bytes, the schema allows at most {}", n, f.bound));
    auto* s = reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(v));
    x.assign(s, s + n);
    return;
  }
  if (!PyByteArray_Check(v) && !PyMemoryView_Check(v))
    fail(p, "bytes expected, got " + type_name_of(v));
  Py_buffer view;
  if (PyObject_GetBuffer(v, &view, PyBUF_C_CONTIGUOUS) != 0)
    fail(p, "bytes expected, got a buffer that is not contiguous: " + take_error_text());
  auto n = static_cast<size_t>(view.len);
  if (n > f.bound) {
    PyBuffer_Release(&view);
    fail(p, fmt::format("{} bytes, the schema allows at most {}", n, f.bound));
  }
  auto* s = static_cast<const uint8_t*>(view.buf);
  x.assign(s, s + n);
  PyBuffer_Release(&view);
}

PyObject* make_bytes(const std::vector<uint8_t>& x, const field_info& f) {
  if (x.size() > f.bound)
    throw convert_failure{};
  PyObject* out = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(x.data()),
                                            static_cast<Py_ssize_t>(x.size()));
  if (out == nullptr)
    throw py::error_already_set();
  return out;
}

uint32_t read_enum(PyObject* v, const field_info& f, const path& p) {
  int is = PyObject_IsInstance(v, f.enum_class);
  if (is < 0)
    PyErr_Clear();
  if (is > 0 || (PyLong_Check(v) && !PyBool_Check(v))) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow == 0 && x >= 0 && x <= 0xFFFFFFFFLL
        && f.members.count(static_cast<uint32_t>(x)) != 0)
      return static_cast<uint32_t>(x);
    PyErr_Clear();
  }
  fail(p, str_of(v, true) + " is not a value of enum " + f.spelling + " (values: "
            + f.values_text + ")");
}

PyObject* make_enum(uint32_t x, const field_info& f) {
  auto i = f.members.find(x);
  if (i == f.members.end())
    throw convert_failure{}; // an undeclared value: the decoder says so
  Py_INCREF(i->second);
  return i->second;
}

Py_ssize_t read_sequence(PyObject* v, const field_info& f, const path& p) {
  if (PyList_Check(v) || PyTuple_Check(v)) {
    auto n = PySequence_Fast_GET_SIZE(v);
    if (f.kind == field_info::array && static_cast<size_t>(n) != f.bound)
      fail(p, fmt::format("array<{},{}> needs exactly {} elements, got {}", f.spelling, f.bound,
                          f.bound, n));
    if (f.kind == field_info::vector && static_cast<size_t>(n) > f.bound)
      fail(p, fmt::format("{} elements, the schema allows at most {}", n, f.bound));
    return n;
  }
  auto spelled = f.kind == field_info::array
                   ? fmt::format("array<{},{}>", f.spelling, f.bound)
                   : fmt::format("vector<{}>[{}]", f.spelling, f.bound);
  fail(p, spelled + " expects a list, got " + type_name_of(v));
}

void wrong_nested(PyObject* v, const field_info& f, const path& p) {
  fail(p, f.nested->type_name + " expected, got " + type_name_of(v));
}

PyObject* make_instance(const class_info& cls) {
  static PyObject* no_args = PyTuple_New(0); // immortal enough: never freed
  PyObject* obj = cls.type->tp_new(cls.type, no_args, nullptr);
  if (obj == nullptr)
    throw py::error_already_set();
  return obj;
}

void set_field(PyObject* obj, PyObject* attr, PyObject* value) {
  ref v{value};
  if (PyObject_SetAttr(obj, attr, v.p) != 0)
    throw py::error_already_set();
}

} // namespace bridge_detail

// -- binding classes ------------------------------------------------------------

namespace {

using bridge_detail::ref;

/// The kinds of mycelium.codec, looked up once.
struct codec_kinds {
  PyObject* scalar;
  PyObject* string;
  PyObject* bytes;
  PyObject* array;
  PyObject* vector;
  PyObject* enumeration;
  PyObject* nested;
};

const codec_kinds& kinds() {
  static const codec_kinds k = [] {
    auto codec = py::module_::import("mycelium.codec");
    auto get = [&](const char* name) { return py::object(codec.attr(name)).release().ptr(); };
    return codec_kinds{get("Scalar"), get("String"), get("Bytes"), get("Array"),
                       get("Vector"), get("EnumKind"), get("Nested")};
  }();
  return k;
}

/// Every class described so far, by type object (GIL-bound).
std::map<PyTypeObject*, class_info*>& described() {
  static auto* m = new std::map<PyTypeObject*, class_info*>;
  return *m;
}

/// Bound classes per bridge (GIL-bound).
std::map<std::pair<const schema_bridge*, PyTypeObject*>, const class_info*>& bound() {
  static auto* m = new std::map<std::pair<const schema_bridge*, PyTypeObject*>, const class_info*>;
  return *m;
}

bool is_a(PyObject* obj, PyObject* cls) {
  int r = PyObject_IsInstance(obj, cls);
  if (r < 0)
    throw py::error_already_set();
  return r > 0;
}

const class_info* describe(PyObject* cls);

void describe_kind(PyObject* kind, field_info& f) {
  auto& k = kinds();
  auto attr = [&](PyObject* o, const char* name) { return py::reinterpret_borrow<py::object>(o).attr(name); };
  if (is_a(kind, k.scalar)) {
    f.kind = field_info::scalar;
    f.spelling = attr(kind, "spelling").cast<std::string>();
  } else if (is_a(kind, k.string)) {
    f.kind = field_info::string;
    f.bound = attr(kind, "max").cast<uint32_t>();
  } else if (is_a(kind, k.bytes)) {
    f.kind = field_info::bytes;
    f.bound = attr(kind, "max").cast<uint32_t>();
  } else if (is_a(kind, k.array)) {
    f.kind = field_info::array;
    f.bound = attr(kind, "count").cast<uint32_t>();
    f.spelling = attr(kind, "element").attr("spelling").cast<std::string>();
  } else if (is_a(kind, k.vector)) {
    f.kind = field_info::vector;
    f.bound = attr(kind, "max").cast<uint32_t>();
    f.spelling = attr(kind, "element").attr("spelling").cast<std::string>();
  } else if (is_a(kind, k.enumeration)) {
    f.kind = field_info::enumeration;
    py::object cls = attr(kind, "cls");
    f.enum_class = cls.inc_ref().ptr();
    f.spelling = cls.attr("__name__").cast<std::string>();
    std::string text;
    for (auto m : cls) {
      auto value = py::int_(py::reinterpret_borrow<py::object>(m)).cast<uint32_t>();
      f.members.emplace(value, m.inc_ref().ptr());
      text += fmt::format("{}{}={}", text.empty() ? "" : ", ",
                          m.attr("name").cast<std::string>(), value);
    }
    f.values_text = text;
  } else if (is_a(kind, k.nested)) {
    f.kind = field_info::message;
    f.nested = describe(attr(kind, "cls").ptr());
  } else {
    throw std::runtime_error("unknown field kind");
  }
}

/// The field table of `cls` (made once); null when it cannot be read.
const class_info* describe(PyObject* cls) {
  if (!PyType_Check(cls))
    return nullptr;
  auto* type = reinterpret_cast<PyTypeObject*>(cls);
  auto& m = described();
  if (auto i = m.find(type); i != m.end())
    return i->second;
  auto info = std::make_unique<class_info>();
  try {
    auto c = py::reinterpret_borrow<py::object>(cls);
    info->type = type;
    info->type_id = c.attr("type_id").cast<uint32_t>();
    info->type_name = c.attr("type_name").cast<std::string>();
    for (auto fo : c.attr("_fields")) {
      field_info f;
      auto attr = fo.attr("attr").cast<std::string>();
      f.attr = PyUnicode_InternFromString(attr.c_str());
      f.name = fo.attr("name").cast<std::string>();
      describe_kind(fo.attr("kind").ptr(), f);
      info->fields.push_back(std::move(f));
    }
  } catch (py::error_already_set&) {
    PyErr_Clear();
    return nullptr;
  } catch (std::exception&) {
    return nullptr;
  }
  Py_INCREF(cls); // the class lives as long as its info: for ever
  auto* raw = info.release();
  m.emplace(type, raw);
  return raw;
}

} // namespace

const class_info* bind_class(PyObject* cls, const schema_bridge& bridge) {
  auto& b = bound();
  auto key = std::make_pair(&bridge, reinterpret_cast<PyTypeObject*>(cls));
  if (auto i = b.find(key); i != b.end())
    return i->second;
  const class_info* out = nullptr;
  if (auto* info = describe(cls)) {
    auto* e = bridge.find(info->type_id);
    std::string digest;
    try {
      digest = py::reinterpret_borrow<py::object>(cls).attr("digest").cast<std::string>();
    } catch (py::error_already_set&) {
      PyErr_Clear();
    }
    if (e != nullptr && digest.size() == e->digest.size()
        && std::memcmp(digest.data(), e->digest.data(), digest.size()) == 0
        && e->matches(*info)) {
      // The entry is what a top-level use needs; nested uses ignore it.
      const_cast<class_info*>(info)->entry = e;
      out = info;
    }
  }
  b.emplace(key, out);
  return out;
}

} // namespace mycelium::python
