// safetensors: round trips of every dtype, the byte layout of the reference implementation (its
// own test vectors), files the reference accepts, and one crafted bad file per validation rule.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <numeric>

#include "core/file.h"
#include "io/io.h"
#include "support/temp_dir.h"
#include "unit/io/io_test_util.h"

using hf::ErrorKind;
using hf::io::DType;
using hf::io::SafetensorsFile;
using hf::io::SafetensorsWriter;
using hf::test::expect_error;

namespace {

// A safetensors file from a header text and a data buffer (no padding added).
std::string st_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + data;
}

SafetensorsFile parse(const std::string& bytes, std::string name = "t.safetensors") {
  return SafetensorsFile::from_buffer(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())),
                                      std::move(name));
}

std::string bytes_of(std::span<const std::byte> s) { return std::string(reinterpret_cast<const char*>(s.data()), s.size()); }

// The Rust crate's test vectors (safetensors/src/tensor.rs: test_serialization, test_empty).
std::string from_u8(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s += static_cast<char>(b);
  return s;
}

}  // namespace

TEST_CASE("safetensors: layout matches the reference implementation's test vectors") {
  const float values[] = {0, 1, 2, 3, 4, 5};
  SafetensorsWriter w;
  w.add("attn.0", DType::kF32, {1, 2, 3}, std::as_bytes(std::span<const float>(values)));
  CHECK(w.serialize() ==
        from_u8({64,  0,   0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 46,  48,  34,  58,  123, 34,
                 100, 116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,  44,  34,  115, 104, 97,  112, 101, 34,
                 58,  91,  49,  44,  50,  44,  51,  93,  44,  34,  100, 97,  116, 97,  95,  111, 102, 102, 115, 101,
                 116, 115, 34,  58,  91,  48,  44,  50,  52,  93,  125, 125, 0,   0,   0,   0,   0,   0,   128, 63,
                 0,   0,   0,   64,  0,   0,   64,  64,  0,   0,   128, 64,  0,   0,   160, 64}));

  SafetensorsWriter forced;  // shorter name: the header needs space padding
  forced.add("attn0", DType::kF32, {1, 1, 2, 3}, std::as_bytes(std::span<const float>(values)));
  CHECK(forced.header().size() == 80);
  CHECK(forced.header().substr(0, 8) == from_u8({72, 0, 0, 0, 0, 0, 0, 0}));
  CHECK(forced.header().substr(73) == "       ");

  SafetensorsWriter empty;
  CHECK(empty.serialize() == from_u8({8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32}));
  empty.set_metadata("framework", "pt");
  CHECK(empty.serialize() == from_u8({40,  0,  0,   0,   0,   0,   0,   0,   123, 34,  95,  95,  109, 101, 116, 97,
                                      100, 97, 116, 97,  95,  95,  34,  58,  123, 34,  102, 114, 97,  109, 101, 119,
                                      111, 114, 107, 34,  58,  34,  112, 116, 34,  125, 125, 32,  32,  32,  32,  32}));
}

TEST_CASE("safetensors: round trip of every dtype, through memory and a file") {
  SafetensorsWriter w;
  std::vector<std::string> payloads;
  payloads.reserve(32);
  const DType all[] = {DType::kBool, DType::kU8,   DType::kI8,   DType::kF8E5M2, DType::kF8E4M3, DType::kF8E8M0,
                       DType::kF8E4M3Fnuz, DType::kF8E5M2Fnuz, DType::kI16, DType::kU16, DType::kF16, DType::kBF16,
                       DType::kI32, DType::kU32, DType::kF32, DType::kC64, DType::kF64, DType::kI64, DType::kU64};
  for (DType d : all) {
    const std::string name = "t_" + std::string(hf::io::dtype_name(d));
    CHECK(hf::io::dtype_from_name(hf::io::dtype_name(d)) == d);
    std::string bytes(2 * 3 * hf::io::dtype_size(d), '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(d == DType::kBool ? i % 2 : i * 7 + 1);
    payloads.push_back(bytes);
    w.add(name, d, {2, 3}, payloads.back());
  }
  w.add("scalar", DType::kF32, {}, std::string_view("\0\0\x80\x3f", 4));
  w.add("zero", DType::kI64, {4, 0}, std::string_view());
  w.set_metadata("format", "pt");
  w.set_metadata("note", "caf\xC3\xA9 \"q\"\n\x01");

  hf::test::TempDir dir;
  const std::string path = dir.file("all.safetensors");
  w.write(path);
  const std::string in_memory = w.serialize();
  CHECK(hf::read_file(path) == in_memory);

  for (int how = 0; how < 2; ++how) {
    SafetensorsFile f = how == 0 ? SafetensorsFile::open(path) : parse(in_memory);
    CHECK(f.tensors().size() == std::size(all) + 2);
    CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "caf\xC3\xA9 \"q\"\n\x01"}});
    for (std::size_t i = 0; i < std::size(all); ++i) {
      const auto* t = f.find("t_" + std::string(hf::io::dtype_name(all[i])));
      REQUIRE(t != nullptr);
      CHECK(t->dtype == all[i]);
      CHECK(t->shape == std::vector<std::int64_t>{2, 3});
      CHECK(t->numel() == 6);
      CHECK(bytes_of(t->bytes()) == payloads[i]);
      CHECK(reinterpret_cast<std::uintptr_t>(t->data) % hf::io::dtype_size(all[i]) == 0);
    }
    CHECK(f.at("scalar").as<float>()[0] == 1.0f);
    CHECK(f.at("scalar").shape.empty());
    CHECK(f.at("zero").nbytes == 0);
    CHECK(f.at("zero").as_i64().empty());
    CHECK(f.at("t_BOOL").as_bool()[1] == 1);
    // Offset order is the writer's order: descending alignment, then name.
    CHECK(f.tensors().front().name == "t_U64");
    CHECK(f.tensors().back().name == "t_BOOL");
    CHECK(f.find("nope") == nullptr);
    expect_error([&] { (void)f.at("nope"); }, ErrorKind::kDataErr, {"field \"nope\": tensor missing"});
    expect_error([&] { (void)f.at("t_F32").as<std::int32_t>(); }, ErrorKind::kDataErr,
                 {"field \"t_F32\": expected dtype I32, got F32"});
  }
}

TEST_CASE("safetensors: typed views hold the values and survive moves") {
  const std::vector<std::int64_t> ids = {1, -2, 1LL << 40};
  const std::vector<float> xs = {0.5f, -1.25f};
  SafetensorsWriter w;
  w.add("ids", DType::kI64, {3}, std::as_bytes(std::span<const std::int64_t>(ids)));
  w.add("xs", DType::kF32, {1, 2}, std::as_bytes(std::span<const float>(xs)));
  const std::string bytes = w.serialize();
  SafetensorsFile f = parse(bytes);
  const hf::io::TensorView* t = f.find("ids");
  SafetensorsFile moved = std::move(f);
  CHECK(moved.find("ids") == t);
  auto got = t->as_i64();
  CHECK(std::vector<std::int64_t>(got.begin(), got.end()) == ids);
  auto fx = moved.at("xs").as_f32();
  CHECK(std::vector<float>(fx.begin(), fx.end()) == xs);
}

TEST_CASE("safetensors: a misaligned buffer still gives aligned typed views") {
  const std::vector<double> xs = {1.5, 2.5, 3.5};
  SafetensorsWriter w;
  w.add("x", DType::kF64, {3}, std::as_bytes(std::span<const double>(xs)));
  const std::string bytes = w.serialize();
  std::string shifted(bytes.size() + 8, '\0');
  std::memcpy(shifted.data() + 3, bytes.data(), bytes.size());
  auto buf = std::as_bytes(std::span<const char>(shifted.data() + 3, bytes.size()));
  SafetensorsFile g = SafetensorsFile::from_buffer(buf);
  auto v = g.at("x").as<double>();
  CHECK(reinterpret_cast<std::uintptr_t>(v.data()) % alignof(double) == 0);
  CHECK(std::vector<double>(v.begin(), v.end()) == xs);
}

TEST_CASE("safetensors: headers the reference accepts") {
  const std::string t = R"("t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  const std::string four(4, '\0');
  struct Case {
    const char* name;
    std::string header;
    std::string data;
    std::size_t tensors;
  };
  const Case cases[] = {
      {"plain", "{" + t + "}", four, 1},
      {"leading and trailing whitespace", " \n{" + t + "}   \n\t", four, 1},
      {"null metadata", R"({"__metadata__":null,)" + t + "}", four, 1},
      {"empty metadata", R"({"__metadata__":{},)" + t + "}", four, 1},
      {"unknown keys in a tensor entry are ignored", R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":[1]}})", four, 1},
      {"empty header", "{}", "", 0},
      {"zero-size tensors at one offset",
       R"({"a":{"dtype":"I8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F64","shape":[3,0],"data_offsets":[0,0]},)" + t + "}", four, 3},
      {"any order of entries", R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)" + t + "}", four + "ab", 2},
      {"huge dims with a zero", R"({"z":{"dtype":"F32","shape":[0,9223372036854775807,9223372036854775807],"data_offsets":[0,0]}})", "", 1},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const std::string bytes = st_bytes(c.header, c.data);
    CHECK(parse(bytes).tensors().size() == c.tensors);
  }
}

TEST_CASE("safetensors: every bad file is a kDataErr naming the file and the tensor") {
  const std::string four(4, '\0');
  auto tensor = [](const std::string& body) { return "{\"t\":{" + body + "}}"; };
  struct Case {
    const char* name;
    std::string bytes;
    std::vector<std::string> fragments;
  };
  std::string big_size = st_bytes("{}", "");
  big_size[3] = 0x10;  // 268 MB header size
  std::string past_end = st_bytes("{}", "");
  past_end[0] = 9;
  const Case cases[] = {
      {"empty file", "", {"t.safetensors: not a safetensors file: 0 bytes"}},
      {"7 bytes", "\x02\0\0\0\0\0\0", {"shorter than the 8-byte header size"}},
      {"header size over the limit", big_size, {"header size 268435458 is over the 100000000-byte limit"}},
      {"header size past the end", past_end, {"header size 9 runs past the end of the file (10 bytes)"}},
      {"all 0xFF size", std::string(8, '\xFF') + "{}", {"over the 100000000-byte limit"}},
      {"header not UTF-8", st_bytes("{\"\xFF\":1}", ""), {"header is not valid UTF-8 (byte 3 of the header)"}},
      {"header not JSON", st_bytes("{\"t\":", ""), {"header is not valid JSON"}},
      {"trailing garbage", st_bytes("{}x", ""), {"header is not valid JSON"}},
      {"NUL padding", st_bytes(std::string("{}\0\0", 4), ""), {"header is not valid JSON: NUL byte at byte 3"}},
      {"garbage after a NUL", st_bytes(std::string("{} \0x", 5), ""), {"NUL byte at byte 4"}},
      {"header is a list", st_bytes("[]", ""), {"header is not a JSON object"}},
      {"header is a string", st_bytes("\"x\"", ""), {"header is not a JSON object"}},
      {"entry not an object", st_bytes("{\"t\":[1]}", ""), {"field \"t\": tensor entry is not a JSON object"}},
      {"dtype missing", st_bytes(tensor(R"("shape":[1],"data_offsets":[0,4])"), four), {"field \"t\": \"dtype\" missing"}},
      {"dtype not a string", st_bytes(tensor(R"("dtype":4,"shape":[1],"data_offsets":[0,4])"), four), {"\"dtype\" is not a string"}},
      {"unknown dtype", st_bytes(tensor(R"("dtype":"F128","shape":[1],"data_offsets":[0,4])"), four), {"field \"t\": unknown or unsupported dtype \"F128\""}},
      {"lower-case dtype", st_bytes(tensor(R"("dtype":"f32","shape":[1],"data_offsets":[0,4])"), four), {"unknown or unsupported dtype \"f32\""}},
      {"packed F4 unsupported", st_bytes(tensor(R"("dtype":"F4","shape":[2],"data_offsets":[0,1])"), "x"), {"unsupported dtype \"F4\""}},
      {"shape missing", st_bytes(tensor(R"("dtype":"F32","data_offsets":[0,4])"), four), {"\"shape\" missing"}},
      {"shape not a list", st_bytes(tensor(R"("dtype":"F32","shape":1,"data_offsets":[0,4])"), four), {"\"shape\" is not a list"}},
      {"negative dim", st_bytes(tensor(R"("dtype":"F32","shape":[-1],"data_offsets":[0,4])"), four), {"field \"t\": \"shape\" has a negative dimension -1"}},
      {"float dim", st_bytes(tensor(R"("dtype":"F32","shape":[1.0],"data_offsets":[0,4])"), four), {"not an integer: 1.0"}},
      {"string dim", st_bytes(tensor(R"("dtype":"F32","shape":["1"],"data_offsets":[0,4])"), four), {"not an integer: \"1\""}},
      {"dim above int64", st_bytes(tensor(R"("dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,4])"), four), {"is too large"}},
      {"dim above uint64", st_bytes(tensor(R"("dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,4])"), four), {"not an integer"}},
      {"element count overflows", st_bytes(tensor(R"("dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,4])"), four), {"overflows"}},
      {"byte count overflows", st_bytes(tensor(R"("dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4])"), four), {"overflows"}},
      {"offsets missing", st_bytes(tensor(R"("dtype":"F32","shape":[1])"), four), {"\"data_offsets\" missing"}},
      {"three offsets", st_bytes(tensor(R"("dtype":"F32","shape":[1],"data_offsets":[0,4,4])"), four), {"two non-negative integers"}},
      {"negative offset", st_bytes(tensor(R"("dtype":"F32","shape":[1],"data_offsets":[-4,0])"), four), {"two non-negative integers"}},
      {"offsets not a list", st_bytes(tensor(R"("dtype":"F32","shape":[1],"data_offsets":4)"), four), {"two non-negative integers"}},
      {"end before begin", st_bytes(tensor(R"("dtype":"F32","shape":[1],"data_offsets":[4,0])"), four), {"end before they begin"}},
      {"size differs from shape x dtype", st_bytes(tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0,4])"), four),
       {"field \"t\": \"data_offsets\" [0, 4] hold 4 bytes but dtype F32 and shape [2] need 8"}},
      {"past the buffer", st_bytes(tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0,8])"), four),
       {"field \"t\": \"data_offsets\" [0, 8] run past the end of the data buffer (4 bytes)"}},
      {"overlap",
       st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", "123456"),
       {"field \"b\": \"data_offsets\" [2, 6] overlap tensor \"a\" (ends at 4)"}},
      {"same range twice",
       st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", four),
       {"overlap tensor \"a\""}},
      {"hole",
       st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})", "12345678"),
       {"field \"b\": \"data_offsets\" [6, 8] leave bytes [4, 6) of the data buffer unused"}},
      {"hole at the start", st_bytes(tensor(R"("dtype":"U8","shape":[2],"data_offsets":[2,4])"), four), {"leave bytes [0, 2)"}},
      {"bytes left at the end", st_bytes(tensor(R"("dtype":"F32","shape":[1],"data_offsets":[0,4])"), four + "xx"),
       {"bytes [4, 6) at the end of the data buffer belong to no tensor"}},
      {"data but no tensors", st_bytes("{}", "x"), {"bytes [0, 1) at the end"}},
      {"duplicate tensor",
       st_bytes(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", "ab"),
       {"t.safetensors: field \"t\": appears twice in the header"}},
      {"duplicate field", st_bytes(tensor(R"("dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4])"), four),
       {"key \"dtype\" appears twice in one object"}},
      {"metadata value not a string", st_bytes(R"({"__metadata__":{"a":1}})", ""), {"field \"__metadata__\": value of \"a\" is not a string: 1"}},
      {"metadata not an object", st_bytes(R"({"__metadata__":["a"]})", ""), {"field \"__metadata__\": is not an object of strings"}},
      {"duplicate metadata key", st_bytes(R"({"__metadata__":{"a":"1","a":"2"}})", ""), {"key \"a\" appears twice"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::vector<std::string> f = c.fragments;
    f.push_back("t.safetensors: ");
    expect_error([&] { parse(c.bytes); }, ErrorKind::kDataErr, {f[0], f.back()});
  }
}

TEST_CASE("safetensors: files on disk — missing, directory, truncated") {
  hf::test::TempDir dir;
  expect_error([&] { SafetensorsFile::open(dir.file("none.safetensors")); }, ErrorKind::kNoInput, {"none.safetensors"});
  expect_error([&] { SafetensorsFile::open(dir.path()); }, ErrorKind::kNoInput, {"is a directory"});
  const std::vector<float> xs(100, 1.0f);
  SafetensorsWriter w;
  w.add("x", DType::kF32, {100}, std::as_bytes(std::span<const float>(xs)));
  const std::string path = dir.file("m.safetensors");
  w.write(path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1);
  expect_error([&] { SafetensorsFile::open(path); }, ErrorKind::kDataErr,
               {path + ": field \"x\": \"data_offsets\" [0, 400] run past the end of the data buffer (399 bytes)"});
}

TEST_CASE("safetensors: BOOL bytes other than 0/1 are rejected on access") {
  SafetensorsWriter w;
  w.add("b", DType::kBool, {3}, std::string_view("\x00\x01\x02", 3));
  const std::string bytes = w.serialize();
  SafetensorsFile f = parse(bytes);
  expect_error([&] { (void)f.at("b").as_bool(); }, ErrorKind::kDataErr, {"BOOL element 2 is 2"});
}

TEST_CASE("safetensors writer: misuse is an error, not a bad file") {
  SafetensorsWriter w;
  std::string four(4, '\0');
  w.add("a", DType::kF32, {1}, four);
  expect_error([&] { w.add("a", DType::kF32, {1}, four); }, ErrorKind::kInternal, {"\"a\"", "added twice"});
  expect_error([&] { w.add("__metadata__", DType::kF32, {1}, four); }, ErrorKind::kInternal, {"reserved"});
  expect_error([&] { w.add("b", DType::kF32, {2}, four); }, ErrorKind::kInternal, {"4 bytes given", "need 8"});
  expect_error([&] { w.add("c", DType::kF32, {-1}, four); }, ErrorKind::kInternal, {"negative"});
  expect_error([&] { w.add("d\xFF", DType::kU8, {4}, four); }, ErrorKind::kDataErr, {"not valid UTF-8"});
  expect_error([&] { w.set_metadata("k", "\xC3"); }, ErrorKind::kDataErr, {"not valid UTF-8"});
  // Nothing is written for a directory that does not exist.
  expect_error([&] { w.write("/nonexistent-dir/x.safetensors"); }, ErrorKind::kCantCreate, {"x.safetensors"});
}
