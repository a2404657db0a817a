// safetensors reading (mmap, zero-copy, every header rule checked before any byte is trusted) and
// writing in the exact layout of the Python/Rust library.
// Spec: https://github.com/huggingface/safetensors — 8-byte little-endian header size N, N bytes of
// JSON header, then the data buffer; data_offsets are relative to the buffer's start. Validation
// follows the Rust crate's (tensor.rs: read_metadata / Metadata::validate), plus duplicate keys.
#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>

#include "core/file.h"
#include "io/input.h"
#include "io/io.h"

namespace hf::io {
namespace {

constexpr std::uint64_t kMaxHeaderSize = 100'000'000;  // safetensors' MAX_HEADER_SIZE
constexpr std::string_view kMetadataKey = "__metadata__";

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
};

// In DType (enum) order.
constexpr std::array<DTypeInfo, 19> kDTypes{{
    {DType::kBool, "BOOL", 1},
    {DType::kU8, "U8", 1},
    {DType::kI8, "I8", 1},
    {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E8M0, "F8_E8M0", 1},
    {DType::kF8E4M3Fnuz, "F8_E4M3FNUZ", 1},
    {DType::kF8E5M2Fnuz, "F8_E5M2FNUZ", 1},
    {DType::kI16, "I16", 2},
    {DType::kU16, "U16", 2},
    {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},
    {DType::kI32, "I32", 4},
    {DType::kU32, "U32", 4},
    {DType::kF32, "F32", 4},
    {DType::kC64, "C64", 8},
    {DType::kF64, "F64", 8},
    {DType::kI64, "I64", 8},
    {DType::kU64, "U64", 8},
}};

const DTypeInfo& info(DType dtype) { return kDTypes[static_cast<std::size_t>(dtype)]; }

// Header JSON: rejects a key repeated within any object (nlohmann would keep the last silently,
// and two entries for one tensor name make the file ambiguous).
nlohmann::json parse_header(std::string_view text, const std::string& file) {
  // nlohmann stops at a NUL as if the input ended there (so "{}\0junk" would pass); JSON text
  // never holds a raw NUL.
  if (auto nul = text.find('\0'); nul != std::string_view::npos)
    throw Error(ErrorKind::kDataErr, Where{file, 0, ""},
                fmt::format("header is not valid JSON: NUL byte at byte {} of the header", nul + 1));
  std::vector<std::set<std::string>> keys;  // one set per open object
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      keys.emplace_back();
    } else if (event == Event::object_end) {
      keys.pop_back();
    } else if (event == Event::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(key).second)
        throw Error(ErrorKind::kDataErr, Where{file, 0, keys.size() == 1 ? key : ""},
                    keys.size() == 1 ? "appears twice in the header"
                                     : fmt::format("header: key \"{}\" appears twice in one object", key));
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, callback);
  } catch (const nlohmann::json::exception& e) {
    std::string_view what = e.what();
    auto colon = what.find("] ");
    throw Error(ErrorKind::kDataErr, Where{file, 0, ""},
                fmt::format("header is not valid JSON: {}",
                            colon == std::string_view::npos ? what : what.substr(colon + 2)));
  }
}

std::uint64_t read_le64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

// A tensor entry after validation, before layout checks.
struct Parsed {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin;
  std::uint64_t end;
};

Parsed parse_tensor(const std::string& name, const nlohmann::json& entry, const std::string& file) {
  auto bad = [&](const std::string& msg) { return Error(ErrorKind::kDataErr, Where{file, 0, name}, msg); };
  if (!entry.is_object()) throw bad("tensor entry is not a JSON object");
  Parsed t{name, DType::kF32, {}, 0, 0};

  auto dt = entry.find("dtype");
  if (dt == entry.end()) throw bad("\"dtype\" missing");
  if (!dt->is_string()) throw bad("\"dtype\" is not a string");
  const auto& dname = dt->get_ref<const std::string&>();
  auto dtype = dtype_from_name(dname);
  if (!dtype) throw bad(fmt::format("unknown or unsupported dtype \"{}\"", dname));
  t.dtype = *dtype;

  auto sh = entry.find("shape");
  if (sh == entry.end()) throw bad("\"shape\" missing");
  if (!sh->is_array()) throw bad("\"shape\" is not a list");
  std::uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) {
      throw bad(d.is_number_integer() ? fmt::format("\"shape\" has a negative dimension {}", d.get<std::int64_t>())
                                      : fmt::format("\"shape\" has a dimension that is not an integer: {}", d.dump()));
    }
    const auto v = d.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw bad(fmt::format("\"shape\" dimension {} is too large", v));
    t.shape.push_back(static_cast<std::int64_t>(v));
    overflow |= __builtin_mul_overflow(numel, v, &numel);
  }
  std::uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, info(t.dtype).size, &nbytes);
  // With a zero dimension the product is 0 whatever the others are, as in the Rust crate's
  // checked product (which overflows only if a partial product does).
  if (overflow) throw bad(fmt::format("\"shape\" {} times the {}-byte dtype overflows", sh->dump(), info(t.dtype).size));

  auto off = entry.find("data_offsets");
  if (off == entry.end()) throw bad("\"data_offsets\" missing");
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
    throw bad(fmt::format("\"data_offsets\" must be two non-negative integers [begin, end], got {}", off->dump()));
  t.begin = (*off)[0].get<std::uint64_t>();
  t.end = (*off)[1].get<std::uint64_t>();
  if (t.end < t.begin) throw bad(fmt::format("\"data_offsets\" [{}, {}] end before they begin", t.begin, t.end));
  if (t.end - t.begin != nbytes)
    throw bad(fmt::format("\"data_offsets\" [{}, {}] hold {} bytes but dtype {} and shape {} need {}", t.begin,
                          t.end, t.end - t.begin, info(t.dtype).name, sh->dump(), nbytes));
  return t;
}

}  // namespace

std::string_view dtype_name(DType dtype) { return info(dtype).name; }
std::size_t dtype_size(DType dtype) { return info(dtype).size; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

void TensorView::check_dtype(DType expected) const {
  if (dtype != expected)
    throw Error(ErrorKind::kDataErr, Where{file, 0, name},
                fmt::format("expected dtype {}, got {}", dtype_name(expected), dtype_name(dtype)));
}

std::span<const std::uint8_t> TensorView::as_bool() const {
  check_dtype(DType::kBool);
  std::span<const std::uint8_t> v(reinterpret_cast<const std::uint8_t*>(data), nbytes);
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] > 1) throw Error(ErrorKind::kDataErr, Where{file, 0, name}, fmt::format("BOOL element {} is {}", i, v[i]));
  return v;
}

struct SafetensorsFile::State {
  std::string name;
  detail::MappedFile map;
  std::vector<TensorView> tensors;
  std::map<std::string, std::size_t, std::less<>> index;
  std::map<std::string, std::string> metadata;
  std::vector<std::unique_ptr<std::byte[]>> copies;  // aligned copies of misaligned tensors

  void parse(std::span<const std::byte> bytes);
};

void SafetensorsFile::State::parse(std::span<const std::byte> bytes) {
  auto bad = [&](const std::string& msg) { return Error(ErrorKind::kDataErr, Where{name, 0, ""}, msg); };
  if (bytes.size() < 8)
    throw bad(fmt::format("not a safetensors file: {} bytes, shorter than the 8-byte header size", bytes.size()));
  const std::uint64_t n = read_le64(bytes.data());
  if (n > kMaxHeaderSize)
    throw bad(fmt::format("not a safetensors file: header size {} is over the {}-byte limit", n, kMaxHeaderSize));
  if (n > bytes.size() - 8)
    throw bad(fmt::format("header size {} runs past the end of the file ({} bytes)", n, bytes.size()));
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  if (auto b = find_invalid_utf8(text); b != std::string_view::npos)
    throw bad(fmt::format("header is not valid UTF-8 (byte {} of the header)", b + 1));

  const nlohmann::json header = parse_header(text, name);
  if (!header.is_object()) throw bad("header is not a JSON object");

  std::vector<Parsed> parsed;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (value.is_null()) continue;
      if (!value.is_object()) throw Error(ErrorKind::kDataErr, Where{name, 0, key}, "is not an object of strings");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          throw Error(ErrorKind::kDataErr, Where{name, 0, key},
                      fmt::format("value of \"{}\" is not a string: {}", k, v.dump()));
        metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    parsed.push_back(parse_tensor(key, value, name));
  }

  // The ranges, in offset order, must tile the data buffer exactly: no overlap, no hole, nothing
  // left over at the end.
  const std::uint64_t buffer_size = bytes.size() - 8 - n;
  std::sort(parsed.begin(), parsed.end(),
            [](const Parsed& a, const Parsed& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  std::uint64_t covered = 0;
  const Parsed* prev = nullptr;
  for (const Parsed& t : parsed) {
    if (t.end > buffer_size)
      throw Error(ErrorKind::kDataErr, Where{name, 0, t.name},
                  fmt::format("\"data_offsets\" [{}, {}] run past the end of the data buffer ({} bytes)", t.begin,
                              t.end, buffer_size));
    if (t.begin < covered)
      throw Error(ErrorKind::kDataErr, Where{name, 0, t.name},
                  fmt::format("\"data_offsets\" [{}, {}] overlap tensor \"{}\" (ends at {})", t.begin, t.end,
                              prev->name, covered));
    if (t.begin > covered)
      throw Error(ErrorKind::kDataErr, Where{name, 0, t.name},
                  fmt::format("\"data_offsets\" [{}, {}] leave bytes [{}, {}) of the data buffer unused", t.begin,
                              t.end, covered, t.begin));
    covered = t.end;
    prev = &t;
  }
  if (covered != buffer_size)
    throw bad(fmt::format("bytes [{}, {}) at the end of the data buffer belong to no tensor", covered, buffer_size));

  const std::byte* base = bytes.data() + 8 + n;
  tensors.reserve(parsed.size());
  for (Parsed& t : parsed) {
    TensorView v;
    v.name = std::move(t.name);
    v.dtype = t.dtype;
    v.shape = std::move(t.shape);
    v.nbytes = t.end - t.begin;
    v.data = base + t.begin;
    v.file = name;
    // The format does not promise alignment (Python's writer provides it); typed access needs it.
    if (reinterpret_cast<std::uintptr_t>(v.data) % dtype_size(v.dtype) != 0) {
      copies.push_back(std::make_unique<std::byte[]>(v.nbytes));
      std::memcpy(copies.back().get(), v.data, v.nbytes);
      v.data = copies.back().get();
    }
    index.emplace(v.name, tensors.size());
    tensors.push_back(std::move(v));
  }
}

SafetensorsFile::SafetensorsFile() : state_(std::make_unique<State>()) {}
SafetensorsFile::~SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.state_->name = path;
  int fd = detail::open_input(path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorKind::kDataErr, Where{path, 0, ""}, "not a regular file");
  }
  try {
    f.state_->map = detail::MappedFile(fd, static_cast<std::size_t>(st.st_size), path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  f.state_->parse({f.state_->map.data(), f.state_->map.size()});
  return f;
}

SafetensorsFile SafetensorsFile::from_buffer(std::span<const std::byte> buffer, std::string name) {
  SafetensorsFile f;
  f.state_->name = std::move(name);
  f.state_->parse(buffer);
  return f;
}

const std::vector<TensorView>& SafetensorsFile::tensors() const { return state_->tensors; }

const TensorView* SafetensorsFile::find(std::string_view name) const {
  auto it = state_->index.find(name);
  return it == state_->index.end() ? nullptr : &state_->tensors[it->second];
}

const TensorView& SafetensorsFile::at(std::string_view name) const {
  const TensorView* t = find(name);
  if (t == nullptr) throw Error(ErrorKind::kDataErr, Where{state_->name, 0, std::string(name)}, "tensor missing");
  return *t;
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return state_->metadata; }
const std::string& SafetensorsFile::name() const { return state_->name; }

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

namespace {

void require_utf8(std::string_view s, std::string_view what) {
  if (find_invalid_utf8(s) != std::string_view::npos)
    throw Error(ErrorKind::kDataErr, fmt::format("safetensors {} is not valid UTF-8", what));
}

}  // namespace

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<std::int64_t> shape,
                            std::span<const std::byte> data) {
  auto bug = [&](const std::string& msg) {
    return Error(ErrorKind::kInternal, fmt::format("SafetensorsWriter::add(\"{}\"): {}", name, msg));
  };
  require_utf8(name, "tensor name");
  if (name == kMetadataKey) throw bug("reserved name");
  for (const auto& e : entries_)
    if (e.name == name) throw bug("added twice");
  std::uint64_t numel = 1;
  bool overflow = false;
  for (auto d : shape) {
    if (d < 0) throw bug("negative dimension");
    overflow |= __builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel);
  }
  std::uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, dtype_size(dtype), &nbytes);
  if (overflow || nbytes != data.size())
    throw bug(fmt::format("{} bytes given, shape and dtype {} need {}", data.size(), dtype_name(dtype), nbytes));
  entries_.push_back(Entry{std::move(name), dtype, std::move(shape), data});
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<std::int64_t> shape, std::string_view data) {
  add(std::move(name), dtype, std::move(shape), std::as_bytes(std::span<const char>(data.data(), data.size())));
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  require_utf8(key, "metadata key");
  require_utf8(value, "metadata value");
  metadata_[std::move(key)] = std::move(value);
}

void SafetensorsWriter::set_metadata(const std::map<std::string, std::string>& metadata) {
  metadata_.clear();
  for (const auto& [k, v] : metadata) set_metadata(k, v);
}

std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::ordered() const {
  std::vector<const Entry*> out;
  for (const auto& e : entries_) out.push_back(&e);
  // Descending alignment (the DType order), then by name, as safetensors' prepare() sorts.
  std::sort(out.begin(), out.end(), [](const Entry* a, const Entry* b) {
    if (a->dtype != b->dtype) return a->dtype > b->dtype;
    return a->name < b->name;
  });
  return out;
}

std::string SafetensorsWriter::header() const {
  std::string json = "{";
  if (!metadata_.empty()) {
    append_json_string(json, kMetadataKey);
    json += ":{";
    bool first = true;
    for (const auto& [k, v] : metadata_) {
      if (!first) json += ',';
      first = false;
      append_json_string(json, k);
      json += ':';
      append_json_string(json, v);
    }
    json += '}';
  }
  std::uint64_t offset = 0;
  for (const Entry* e : ordered()) {
    if (json.size() > 1) json += ',';
    append_json_string(json, e->name);
    json += ":{\"dtype\":\"";
    json += dtype_name(e->dtype);
    json += "\",\"shape\":[";
    for (std::size_t i = 0; i < e->shape.size(); ++i) {
      if (i) json += ',';
      append_int(json, e->shape[i]);
    }
    json += "],\"data_offsets\":[";
    json += std::to_string(offset);
    json += ',';
    offset += e->data.size();
    json += std::to_string(offset);
    json += "]}";
  }
  json += '}';
  // Pad to a multiple of 8 so the data buffer starts 8-byte aligned (the Rust writer does this).
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  std::uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + json;
}

void SafetensorsWriter::write(const std::string& path) const {
  AtomicFile file(path);
  file.write(header());
  for (const Entry* e : ordered()) file.write(e->data.data(), e->data.size());
  file.commit();
}

std::string SafetensorsWriter::serialize() const {
  std::string out = header();
  for (const Entry* e : ordered()) out.append(reinterpret_cast<const char*>(e->data.data()), e->data.size());
  return out;
}

}  // namespace hf::io
