// hf::io — streaming record readers (JSON Lines, CSV/TSV, plain lines; a file or "-" for stdin),
// a fast JSON Lines writer, and safetensors reading (mmap, zero-copy, fully validated) and writing.
// No torch here: tensors are byte views plus dtype and shape.
// Format spec followed: https://github.com/huggingface/safetensors (README "Format").
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace hf::io {

// ---------------------------------------------------------------------------------------------
// Record readers
// ---------------------------------------------------------------------------------------------

enum class Format { kJsonl, kCsv, kTsv, kLines };

// By extension, case-insensitive: .jsonl .json .ndjson -> kJsonl, .csv, .tsv, .txt -> kLines.
// Throws Error(kUsage) for anything else (and for "-": stdin has no extension).
Format format_from_path(const std::string& path);
std::string_view format_name(Format format);  // "jsonl", "csv", "tsv", "lines"

enum class OnBad { kError, kSkip };

struct ReaderOptions {
  OnBad on_bad = OnBad::kError;
  // In skip mode, at most this many skipped records are logged (warn) one by one; the count
  // returned by bad_records() is always complete.
  int max_bad_logged = 20;
};

// JSON Lines records nested deeper than this (arrays and objects) are bad records: every loop
// over untrusted structure has a bound (STYLE.md §12), and 100k levels crash recursive code.
inline constexpr int kMaxJsonDepth = 512;

// One input record.
//   kJsonl: the parsed object of one line, and that line's text (`raw`) for passthrough output.
//   kCsv/kTsv: {column: string} in header order, every value a string.
//   kLines: {"text": line}.
struct Record {
  std::int64_t line = 0;  // 1-based physical line where the record starts
  nlohmann::ordered_json value;
  std::string raw;        // kJsonl only: the object's text as read (parsed values lose digits)
};

// Appends `record` as one compact JSON object for output, its fields passed through as read:
// for JSONL each member's value is its original text byte for byte (12345678901234567890123456789
// stays so, where a parsed double would print 1.2345678901234568e+29), only the whitespace
// between members is dropped; a key given twice keeps its first position and last value, as the
// parsed record does. Members named in `drop` are left out, and `extra` — already-serialised
// members ("\"k\":v,\"k2\":v2", or empty) — goes before the closing brace.
// Requires: `record` came from RecordReader (its raw text is valid JSON).
void append_passthrough(std::string& out, const Record& record, std::span<const std::string_view> drop,
                        std::string_view extra);
// The members of a JSON object text as (key, value) texts, in order; whitespace around them is
// trimmed. Requires: `object` is a valid JSON object.
std::vector<std::pair<std::string_view, std::string_view>> object_members(std::string_view object);

// Reads records one at a time from a file or "-" (stdin). A regular file (stdin redirected from
// one included) is mmap'ed; pipes are read in 1 MiB blocks. Memory stays bounded by the longest
// record, except for mmap'ed files, which the kernel pages in and out.
//
// Rules common to every format:
//   - a UTF-8 byte order mark at the start of the input is dropped;
//   - every line must be valid UTF-8 (no overlongs, surrogates or code points > U+10FFFF);
//     otherwise "FILE:LINE: invalid UTF-8 at byte N" (N 1-based within the line);
//   - an empty input gives no records (callers decide whether that is an error).
// kJsonl: one JSON object per line; lines of only spaces/tabs/CR are skipped (as Python's
//   json-lines readers do); a non-object value or invalid JSON is a bad record. Keys repeated
//   within an object keep the last value (like Python's json); a raw NUL byte is invalid JSON.
// kCsv/kTsv: RFC 4180 with ',' or '\t' as delimiter: the first record is the header (column
//   names, which must be unique); a field
//   that starts with '"' is quoted: it may hold delimiters, newlines and "" (an escaped quote),
//   and after its closing quote only a delimiter or the end of the record may follow. A '"' inside
//   an unquoted field is literal (as in Python's csv module). Records end with LF or CRLF (the CR
//   is dropped); a CR not followed by LF is data (Python's csv reader would end the record there,
//   RFC 4180 does not); blank lines are skipped (as csv.DictReader does); a record whose field count
//   differs from the header's is a bad record naming the line and both counts.
// kLines: one record per '\n'-terminated line. Only '\n' splits: a '\r' before it stays part of
//   the text (so "a\r\n" gives "a\r"; the tokenizer's normalizer treats it as whitespace). Empty
//   lines are records (empty text); the empty "line" after a final '\n' is not.
//
// Errors: Error(kNoInput) when the file does not exist (or is a directory), kNoPerm when it cannot
// be read, kIo on read failures, kDataErr for a bad record in error mode ("FILE:LINE: what"; the
// file is "<stdin>" for "-"). In skip mode a bad record is counted, logged at warn (up to
// max_bad_logged) and skipped. Errors in the CSV/TSV header are kDataErr in both modes.
//
// Not thread-safe; one reader per thread. Movable, not copyable.
class RecordReader {
 public:
  RecordReader(std::string path, Format format, ReaderOptions options = {});
  ~RecordReader();
  RecordReader(RecordReader&&) noexcept;
  RecordReader& operator=(RecordReader&&) noexcept;

  // The next record, or nullopt at the end of the input.
  std::optional<Record> next();

  // kLines only, the fast path (no allocation per line): the next line as a view valid until the
  // next call to next_line()/next() or the reader's destruction. Returns false at the end.
  // `line_number()` is the line's 1-based number. Throws Error(kInternal) for other formats.
  bool next_line(std::string_view& line);
  std::int64_t line_number() const;

  // Records skipped so far (skip mode).
  std::int64_t bad_records() const;
  // The name used in error messages: the path, or "<stdin>".
  const std::string& display_name() const;
  // CSV/TSV: the header's column names (empty before the first next() or for other formats).
  const std::vector<std::string>& columns() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads a whole input into memory, e.g. for small files. Same rules and errors as RecordReader.
std::vector<Record> read_all(const std::string& path, Format format, ReaderOptions options = {});

// Field access with precise errors ("FILE:LINE: field "text": missing" / "expected a string").
// `file` is the name used in messages (RecordReader::display_name()).
// Throws Error(kDataErr).
std::string_view require_string(const Record& record, std::string_view field, const std::string& file);

// A label: a string, an integer (returned in decimal), or a list of strings (multi-label; may be
// empty). `is_list` tells the two forms apart, `is_integer` an integer from a string ("1" and 1
// give the same value: callers refuse data that mixes them). Throws Error(kDataErr) for anything
// else, including a missing field.
struct Labels {
  std::vector<std::string> values;
  bool is_list = false;
  bool is_integer = false;
};
Labels require_labels(const Record& record, std::string_view field, const std::string& file);

// ---------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------

// Offset of the first byte that is not part of a well-formed UTF-8 sequence (Unicode 15 table 3-7:
// no overlongs, no surrogates, nothing above U+10FFFF), or std::string_view::npos if all valid.
std::size_t find_invalid_utf8(std::string_view s) noexcept;

// ---------------------------------------------------------------------------------------------
// JSON Lines writer
// ---------------------------------------------------------------------------------------------

// Writes one JSON value per line to a file (atomically, see hf::AtomicFile) or "-" (stdout), via a
// 1 MiB buffer. On stdout, a reader that went away (EPIPE; SIGPIPE must be ignored, as the run
// wrapper does) throws hf::BrokenPipe — an hf::Error of kind kIo that the run wrapper recognises
// and turns into a quiet exit 0; any other write failure throws Error(kIo).
// For files, nothing appears until close(); destroying the writer without close() leaves no file.
// Not thread-safe.
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  // One line: the value serialised compactly (UTF-8 kept, invalid UTF-8 is an Error(kInternal)).
  void write(const nlohmann::ordered_json& value);
  void write(const nlohmann::json& value);
  // One already-serialised JSON text; the newline is added.
  void write_line(std::string_view json);
  // The buffer itself, for callers that build lines piecewise (append_int etc.); every line
  // appended must end with '\n'. Call maybe_flush() after appending.
  std::string& buffer() { return buffer_; }
  void maybe_flush();
  // Writes the buffer out (stdout: now; files: into the temp file).
  void flush();
  // Flushes; for files, commits (fsync + rename). Idempotent.
  void close();

 private:
  void write_out(std::string_view data);
  std::string path_;
  std::string buffer_;
  struct FileSink;
  std::unique_ptr<FileSink> file_;  // null for stdout
  bool closed_ = false;
};

// Appends the decimal form of v (std::to_chars, no allocation).
void append_int(std::string& out, std::int64_t v);
// Appends s as a JSON string literal (quotes included), escaped as nlohmann::json dumps it.
// Requires: s is valid UTF-8.
void append_json_string(std::string& out, std::string_view s);
// Writes all of data to fd (EINTR-safe). EPIPE -> hf::BrokenPipe(what); other failures -> kIo.
void write_fd(int fd, std::string_view data, const std::string& what);

// ---------------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------------

// Element types. The enum order is safetensors' own (Rust `Dtype`), which its writer uses to lay
// tensors out by descending alignment; SafetensorsWriter does the same. Packed sub-byte types
// (F4, F6_*) are not supported.
enum class DType {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kF8E8M0,
  kF8E4M3Fnuz,
  kF8E5M2Fnuz,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kC64,
  kF64,
  kI64,
  kU64,
};
using Dtype = DType;

std::string_view dtype_name(DType dtype);                    // "F32", "BOOL", ...
std::optional<DType> dtype_from_name(std::string_view name);  // exact (upper-case) names
std::size_t dtype_size(DType dtype);                          // bytes per element

// The DType that matches a C++ element type (for TensorView::as<T>).
template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kF64; };
template <> struct DTypeOf<std::int64_t> { static constexpr DType value = DType::kI64; };
template <> struct DTypeOf<std::int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<std::int16_t> { static constexpr DType value = DType::kI16; };
template <> struct DTypeOf<std::int8_t> { static constexpr DType value = DType::kI8; };
template <> struct DTypeOf<std::uint64_t> { static constexpr DType value = DType::kU64; };
template <> struct DTypeOf<std::uint32_t> { static constexpr DType value = DType::kU32; };
template <> struct DTypeOf<std::uint16_t> { static constexpr DType value = DType::kU16; };
template <> struct DTypeOf<std::uint8_t> { static constexpr DType value = DType::kU8; };

// One tensor of an open SafetensorsFile. `data` points into the file's mapping (or, for a tensor
// whose offset is not aligned to its element size, into an aligned copy made at open): it is
// valid while the SafetensorsFile lives, and read-only. Little-endian, C order.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;  // [] is a scalar (1 element)
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;
  std::string file;  // display name of the file, for error messages

  std::int64_t numel() const;
  std::span<const std::byte> bytes() const { return {data, nbytes}; }

  // The elements as T. Throws Error(kDataErr, "FILE: field "NAME": expected dtype X, got Y") when
  // the dtype is not DTypeOf<T>. The span is suitably aligned.
  template <typename T>
  std::span<const T> as() const {
    check_dtype(DTypeOf<std::remove_cv_t<T>>::value);
    return {reinterpret_cast<const T*>(data), nbytes / sizeof(T)};
  }
  std::span<const float> as_f32() const { return as<float>(); }
  std::span<const std::int64_t> as_i64() const { return as<std::int64_t>(); }
  std::span<const std::int32_t> as_i32() const { return as<std::int32_t>(); }
  // BOOL as bytes; throws Error(kDataErr) if a byte is neither 0 nor 1.
  std::span<const std::uint8_t> as_bool() const;

  void check_dtype(DType expected) const;
};

// A safetensors file, validated completely at open. Rejected with Error(kDataErr) naming the file
// (and the tensor or field): a file shorter than 8 bytes; a header size over 100,000,000 bytes
// (safetensors' own limit) or past the end of the file; a header that is not UTF-8, not JSON, not
// an object, or has a key twice at any level; a tensor entry that is not an object or lacks
// "dtype" (a known name), "shape" (non-negative integers) or "data_offsets" (two non-negative
// integers, begin <= end); an element count × dtype size that overflows or differs from
// end - begin; ranges that overlap, leave holes, or do not cover the data buffer exactly up to the
// end of the file; "__metadata__" that is not an object of strings (null is allowed).
// Unknown keys inside a tensor entry are ignored, as safetensors does.
// Missing file: Error(kNoInput); unreadable: kNoPerm / kIo.
//
// Movable; views stay valid across moves. Thread-safe for concurrent reads.
class SafetensorsFile {
 public:
  // Maps `path` read-only. The file must not be truncated while open (SIGBUS otherwise, as with
  // any mmap reader).
  static SafetensorsFile open(const std::string& path);
  // Parses bytes already in memory; they are NOT copied and must outlive the returned object.
  // `name` is used in error messages.
  static SafetensorsFile from_buffer(std::span<const std::byte> buffer, std::string name = "<buffer>");

  SafetensorsFile();
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;

  // Tensors in file (offset) order.
  const std::vector<TensorView>& tensors() const;
  // nullptr when there is no tensor called `name`.
  const TensorView* find(std::string_view name) const;
  // Throws Error(kDataErr, "FILE: field "NAME": tensor missing") when absent.
  const TensorView& at(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const;
  const std::string& name() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Builds a safetensors file in the layout Python's safetensors writes (byte-identical when there
// is at most one metadata key; with more, Python's key order is its hash map's, ours is sorted):
// tensors ordered by descending dtype alignment (the DType enum order), then by name; the header
// {"__metadata__": {...}, name: {"dtype", "shape", "data_offsets"}, ...} compact JSON padded with
// spaces to a multiple of 8 bytes.
// Tensor bytes are REFERENCED, not copied: they must stay alive and unchanged until write() or
// serialize() returns. Not thread-safe.
class SafetensorsWriter {
 public:
  // Throws Error(kInternal) when the name is "__metadata__" or already added, a dimension is
  // negative, or data.size() != numel × dtype size; Error(kDataErr) when the name is not UTF-8.
  void add(std::string name, DType dtype, std::vector<std::int64_t> shape, std::span<const std::byte> data);
  void add(std::string name, DType dtype, std::vector<std::int64_t> shape, std::string_view data);
  // Sets one metadata entry (replacing an earlier value of that key). Error(kDataErr) if not UTF-8.
  void set_metadata(std::string key, std::string value);
  // Replaces all metadata.
  void set_metadata(const std::map<std::string, std::string>& metadata);

  // The 8-byte size, header and padding that precede the data.
  std::string header() const;
  // Writes the file atomically (hf::AtomicFile): Error(kCantCreate / kIo).
  void write(const std::string& path) const;
  // The whole file in memory (for tests and small files).
  std::string serialize() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::span<const std::byte> data;
  };
  std::vector<const Entry*> ordered() const;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace hf::io
