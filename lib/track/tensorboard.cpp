// TensorBoard event files written directly: TFRecord framing around protobuf `Event` messages
// encoded by hand (the handful of fields TensorBoard reads; no libprotobuf). Formats:
// tensorflow/core/lib/io/record_writer.cc (framing), tensorboard/compat/proto/event.proto,
// summary.proto and tensor.proto (messages). Scalars are `simple_value`s, the config a text
// plugin summary, as torch.utils.tensorboard writes them.
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "track/sinks.h"

namespace hf::track {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- protobuf wire format (https://protobuf.dev/programming-guides/encoding/) ----
constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, int field, int wire) { put_varint(out, static_cast<std::uint64_t>(field << 3 | wire)); }
void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_bytes(std::string& out, int field, std::string_view s) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, s.size());
  out.append(s);
}
void put_double(std::string& out, int field, double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  put_key(out, field, kFixed64);
  put_le(out, bits, 8);
}
void put_float(std::string& out, int field, float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  put_key(out, field, kFixed32);
  put_le(out, bits, 4);
}
void put_int(std::string& out, int field, std::int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<std::uint64_t>(v));
}

// Event {wall_time = 1, step = 2, file_version = 3 | summary = 5}.
std::string event(double wall_time, std::int64_t step, const std::string* file_version, const std::string* summary) {
  std::string e;
  put_double(e, 1, wall_time);
  put_int(e, 2, step);
  if (file_version) put_bytes(e, 3, *file_version);
  if (summary) put_bytes(e, 5, *summary);
  return e;
}

// Summary.Value {tag = 1, simple_value = 2}, wrapped in Summary {value = 1}.
void add_scalar(std::string& summary, const std::string& tag, double value) {
  std::string v;
  put_bytes(v, 1, tag);
  put_float(v, 2, static_cast<float>(value));
  put_bytes(summary, 1, v);
}

// A text-plugin summary: metadata {plugin_data {plugin_name "text"}}, a DT_STRING tensor of shape
// [1] holding the markdown.
std::string text_summary(const std::string& tag, const std::string& text) {
  constexpr int kDtString = 7;
  std::string plugin, metadata, dim, shape, tensor, value, summary;
  put_bytes(plugin, 1, "text");
  put_bytes(metadata, 1, plugin);
  put_int(dim, 1, 1);
  put_bytes(shape, 2, dim);
  put_int(tensor, 1, kDtString);
  put_bytes(tensor, 2, shape);
  put_bytes(tensor, 8, text);
  put_bytes(value, 1, tag);
  put_bytes(value, 8, tensor);
  put_bytes(value, 9, metadata);
  put_bytes(summary, 1, value);
  return summary;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The scalars of one log_history record as one Event record ("" when it has none).
std::string record_event(const json& rec, double wall_time) {
  std::string summary;
  for (const auto& [key, value] : rec.items())
    if (key != "step" && value.is_number()) add_scalar(summary, tensorboard_tag(key), value.get<double>());
  if (summary.empty()) return {};
  return tfrecord(event(wall_time, rec.value("step", std::int64_t{0}), nullptr, &summary));
}

constexpr const char* kSuffix = ".hfkit";  // marks our event files, the ones a resume replaces

class TensorBoard final : public Tracker {
 public:
  // Writes the whole file from `history` beside the old ones, then removes those: TensorBoard reads
  // every event file of a directory, so keeping the old one would show the redone steps twice.
  TensorBoard(const std::string& dir, const std::string& config_yaml, const json& history) {
    make_dirs(dir);
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    const double t = now_seconds();
    path_ = (fs::path(dir) / fmt::format("events.out.tfevents.{}.{}.{}{}", static_cast<std::int64_t>(t), host,
                                         getpid(), kSuffix)).string();
    const std::string version = "brain.Event:2";
    std::string content = tfrecord(event(t, 0, &version, nullptr));
    const std::string text = text_summary("args/text_summary", "```yaml\n" + config_yaml + "```");
    content += tfrecord(event(t, 0, nullptr, &text));
    for (const json& rec : history) content += record_event(rec, t);
    write_file_atomic(path_, content);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.path() != path_ && name.starts_with("events.out.tfevents.") && name.ends_with(kSuffix))
        fs::remove(entry.path(), ec);
    }
    file_ = std::fopen(path_.c_str(), "ab");
    if (file_ == nullptr) throw_errno(ErrorKind::kCantCreate, "cannot open", path_, errno);
  }
  ~TensorBoard() override {
    if (file_) std::fclose(file_);
  }
  TensorBoard(const TensorBoard&) = delete;
  TensorBoard& operator=(const TensorBoard&) = delete;

  // Flushed at once, so a live TensorBoard follows the run.
  void log(const json& rec) override {
    const std::string r = record_event(rec, now_seconds());
    if (r.empty()) return;
    if (std::fwrite(r.data(), 1, r.size(), file_) != r.size() || std::fflush(file_) != 0)
      throw_errno(ErrorKind::kIo, "cannot write", path_, errno);
  }
  void finish(const std::string&) override { std::fflush(file_); }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace

std::string tensorboard_tag(std::string_view key) {
  if (key.starts_with("eval_")) return "eval/" + std::string(key.substr(5));
  if (key.starts_with("test_")) return "test/" + std::string(key.substr(5));
  return "train/" + std::string(key);
}

std::uint32_t crc32c(std::string_view data) {
  static const std::array<std::uint32_t, 256> table = [] {
    constexpr std::uint32_t kPoly = 0x82f63b78;  // Castagnoli, reflected
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t crc = 0xffffffff;
  for (unsigned char b : data) crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffff;
}

std::uint32_t masked_crc32c(std::string_view data) {
  constexpr std::uint32_t kMaskDelta = 0xa282ead8;  // TFRecord's, so CRCs of CRCs stay distinct
  const std::uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + kMaskDelta;
}

std::string tfrecord(std::string_view data) {
  std::string out, length;
  put_le(length, data.size(), 8);
  out += length;
  put_le(out, masked_crc32c(length), 4);
  out.append(data);
  put_le(out, masked_crc32c(data), 4);
  return out;
}

std::unique_ptr<Tracker> make_tensorboard(const std::string& dir, const std::string& config_yaml, const json& history) {
  return std::make_unique<TensorBoard>(dir, config_yaml, history);
}

}  // namespace hf::track
