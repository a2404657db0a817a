// io readers: JSON Lines, CSV/TSV, plain lines — good inputs first, then bad ones; skip mode;
// pipes and stdin (the block-buffer path); UTF-8 validation; field accessors.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "io/io.h"
#include "support/temp_dir.h"
#include "unit/io/io_test_util.h"

using hf::ErrorKind;
using hf::io::Format;
using hf::io::OnBad;
using hf::io::Record;
using hf::test::expect_error;
using hf::test::write_bytes;

namespace {

// Reads `bytes` as `format` from a temp file; returns each record as "line:json".
std::vector<std::string> read_as(Format format, const std::string& bytes, OnBad on_bad = OnBad::kError,
                                 std::int64_t* bad = nullptr) {
  hf::test::TempDir dir;
  const std::string path = dir.file("in");
  write_bytes(path, bytes);
  hf::io::RecordReader reader(path, format, {on_bad});
  std::vector<std::string> out;
  while (auto r = reader.next()) out.push_back(std::to_string(r->line) + ":" + r->value.dump());
  if (bad) *bad = reader.bad_records();
  return out;
}

// The error message reading `bytes` gives (the file is named "in" inside a temp dir).
std::string read_error(Format format, const std::string& bytes, std::initializer_list<std::string> fragments) {
  return expect_error([&] { read_as(format, bytes); }, ErrorKind::kDataErr, fragments);
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("jsonl: good inputs") {
  struct Case {
    const char* name;
    std::string in;
    Lines want;
  };
  const Case cases[] = {
      {"two lines", "{\"a\":1}\n{\"b\":\"x\"}\n", {"1:{\"a\":1}", "2:{\"b\":\"x\"}"}},
      {"no final newline", "{\"a\":1}\n{\"a\":2}", {"1:{\"a\":1}", "2:{\"a\":2}"}},
      {"blank lines skipped, numbers kept", "\n{\"a\":1}\n  \t\n\r\n{\"a\":2}\n", {"2:{\"a\":1}", "5:{\"a\":2}"}},
      {"CRLF", "{\"a\":1}\r\n{\"a\":2}\r\n", {"1:{\"a\":1}", "2:{\"a\":2}"}},
      {"BOM", "\xEF\xBB\xBF{\"a\":1}\n", {"1:{\"a\":1}"}},
      {"key order kept", "{\"z\":1,\"a\":[1,2],\"m\":{\"y\":null,\"b\":true}}", {"1:{\"z\":1,\"a\":[1,2],\"m\":{\"y\":null,\"b\":true}}"}},
      {"unicode and escapes", "{\"t\":\"caf\xC3\xA9 \\u00e9 \\ud83d\\ude00 \xF0\x9F\x98\x80\"}",
       {"1:{\"t\":\"caf\xC3\xA9 \xC3\xA9 \xF0\x9F\x98\x80 \xF0\x9F\x98\x80\"}"}},
      {"repeated key: last wins", "{\"a\":1,\"a\":2}", {"1:{\"a\":2}"}},
      {"empty", "", {}},
      {"only blank lines", "\n\n  \n", {}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(read_as(Format::kJsonl, c.in) == c.want);
  }
}

TEST_CASE("jsonl: bad records name the line and the problem") {
  read_error(Format::kJsonl, "{\"a\":1}\n{bad}\n", {"/in:2: invalid JSON at byte 2"});
  read_error(Format::kJsonl, "{\"a\":\n", {"/in:1: invalid JSON"});
  read_error(Format::kJsonl, "{\"a\":1} x\n", {"/in:1: invalid JSON"});
  // Found by fuzz.records: a number beyond double's range is a bad record, not a crash.
  read_error(Format::kJsonl, "{\"text\": 3e957}\n", {"/in:1: invalid JSON: number overflow"});
  read_error(Format::kJsonl, "[1,2]\n", {"/in:1: expected a JSON object (one per line), got an array"});
  read_error(Format::kJsonl, "\"text\"\n", {"/in:1: expected a JSON object", "got a string"});
  read_error(Format::kJsonl, "{\"a\":1}\n3\n", {"/in:2: expected a JSON object", "got a number"});
  read_error(Format::kJsonl, "{\"a\":\"\xFF\"}\n", {"/in:1: invalid UTF-8 at byte 7"});
  read_error(Format::kJsonl, "{\"a\":1}\n\n{\"a\":\"\xC3\"}", {"/in:3: invalid UTF-8 at byte 7"});
  read_error(Format::kJsonl, std::string("{\"a\":1}\0junk\n", 12), {"/in:1: invalid JSON at byte 8: NUL byte"});
}

TEST_CASE("jsonl: skip mode counts and skips bad records") {
  std::int64_t bad = 0;
  auto got = read_as(Format::kJsonl, "{\"a\":1}\nbad\n[1]\n{\"a\":\"\xFF\"}\n{\"a\":2}\n", OnBad::kSkip, &bad);
  CHECK(got == Lines{"1:{\"a\":1}", "5:{\"a\":2}"});
  CHECK(bad == 3);
}

TEST_CASE("csv/tsv: good inputs") {
  struct Case {
    const char* name;
    Format format;
    std::string in;
    Lines want;
  };
  const Case cases[] = {
      {"plain", Format::kCsv, "text,label\nhello,pos\nbye,neg\n",
       {"2:{\"text\":\"hello\",\"label\":\"pos\"}", "3:{\"text\":\"bye\",\"label\":\"neg\"}"}},
      {"no final newline", Format::kCsv, "a,b\n1,2", {"2:{\"a\":\"1\",\"b\":\"2\"}"}},
      {"quoted delimiter and escaped quote", Format::kCsv, "a,b\n\"x, y\",\"say \"\"hi\"\"\"\n",
       {"2:{\"a\":\"x, y\",\"b\":\"say \\\"hi\\\"\"}"}},
      {"embedded newline: record keeps its first line", Format::kCsv, "a,b\n\"l1\nl2\",x\ny,z\n",
       {"2:{\"a\":\"l1\\nl2\",\"b\":\"x\"}", "4:{\"a\":\"y\",\"b\":\"z\"}"}},
      {"CRLF records, CRLF inside quotes kept", Format::kCsv, "a,b\r\n1,\"p\r\nq\"\r\n3,4\r\n",
       {"2:{\"a\":\"1\",\"b\":\"p\\r\\nq\"}", "4:{\"a\":\"3\",\"b\":\"4\"}"}},
      {"BOM dropped from the first column name", Format::kCsv, "\xEF\xBB\xBFtext,label\nx,y\n",
       {"2:{\"text\":\"x\",\"label\":\"y\"}"}},
      {"empty fields", Format::kCsv, "a,b,c\n,,\n\"\",x,\n", {"2:{\"a\":\"\",\"b\":\"\",\"c\":\"\"}", "3:{\"a\":\"\",\"b\":\"x\",\"c\":\"\"}"}},
      {"empty last field before CRLF", Format::kCsv, "a,b\r\n1,\r\n", {"2:{\"a\":\"1\",\"b\":\"\"}"}},
      {"blank lines skipped", Format::kCsv, "a\n\n1\n\r\n2\n", {"3:{\"a\":\"1\"}", "5:{\"a\":\"2\"}"}},
      {"quote inside an unquoted field is literal", Format::kCsv, "a,b\n5\" screen,x\n", {"2:{\"a\":\"5\\\" screen\",\"b\":\"x\"}"}},
      {"spaces kept", Format::kCsv, "a,b\n x , y \n", {"2:{\"a\":\" x \",\"b\":\" y \"}"}},
      {"unicode", Format::kCsv, "t\n\"caf\xC3\xA9, cr\xC3\xAApe\"\n", {"2:{\"t\":\"caf\xC3\xA9, cr\xC3\xAApe\"}"}},
      {"header only", Format::kCsv, "a,b\n", {}},
      {"empty", Format::kCsv, "", {}},
      {"tsv", Format::kTsv, "text\tlabel\na, b\t1\n\"x\ty\"\t2\n",
       {"2:{\"text\":\"a, b\",\"label\":\"1\"}", "3:{\"text\":\"x\\ty\",\"label\":\"2\"}"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(read_as(c.format, c.in) == c.want);
  }
}

TEST_CASE("csv: bad records") {
  read_error(Format::kCsv, "a,b\n1,2\n1,2,3\n", {"/in:3: expected 2 fields (as in the header), got 3"});
  read_error(Format::kCsv, "a,b\n1\n", {"/in:2: expected 2 fields (as in the header), got 1"});
  read_error(Format::kCsv, "a,b\n1,\"open\nstill open\n", {"/in:2: field 2: quoted field not closed"});
  read_error(Format::kCsv, "a,b\n\"x\"y,2\n", {"/in:2: field 1: unexpected character after the closing quote"});
  read_error(Format::kCsv, "a,b\n1,\"x\" \n", {"/in:2: field 2: unexpected character after the closing quote"});
  read_error(Format::kCsv, "a,b\n1,\xE2\x82\n", {"/in:2: invalid UTF-8 at byte 3"});
  read_error(Format::kTsv, "a\tb\n1\t2\t3\n", {"/in:2: expected 2 fields"});
  // Header problems are fatal in both modes.
  for (OnBad mode : {OnBad::kError, OnBad::kSkip}) {
    expect_error([&] { read_as(Format::kCsv, "a,b,a\n1,2,3\n", mode); }, ErrorKind::kDataErr,
                 {"/in:1: header: column \"a\" appears twice"});
    expect_error([&] { read_as(Format::kCsv, "a,\xFF\n1,2\n", mode); }, ErrorKind::kDataErr,
                 {"/in:1: header: invalid UTF-8 at byte 3"});
    expect_error([&] { read_as(Format::kCsv, "\"a,b\n", mode); }, ErrorKind::kDataErr,
                 {"/in:1: header: field 1: quoted field not closed"});
  }
}

TEST_CASE("csv: skip mode resumes at the next line") {
  std::int64_t bad = 0;
  auto got = read_as(Format::kCsv, "a,b\n1,2\n1,2,3\n\"x\"y,z\n3,\xFF\n4,5\n", OnBad::kSkip, &bad);
  CHECK(got == Lines{"2:{\"a\":\"1\",\"b\":\"2\"}", "6:{\"a\":\"4\",\"b\":\"5\"}"});
  CHECK(bad == 3);
}

TEST_CASE("lines: good inputs") {
  struct Case {
    const char* name;
    std::string in;
    Lines want;
  };
  const Case cases[] = {
      {"two lines", "a\nb\n", {"1:{\"text\":\"a\"}", "2:{\"text\":\"b\"}"}},
      {"no final newline", "a\nb", {"1:{\"text\":\"a\"}", "2:{\"text\":\"b\"}"}},
      {"empty lines are records", "a\n\n\nb\n", {"1:{\"text\":\"a\"}", "2:{\"text\":\"\"}", "3:{\"text\":\"\"}", "4:{\"text\":\"b\"}"}},
      {"only newline", "\n", {"1:{\"text\":\"\"}"}},
      {"CR kept", "a\r\nb\r", {"1:{\"text\":\"a\\r\"}", "2:{\"text\":\"b\\r\"}"}},
      {"BOM dropped", "\xEF\xBB\xBFx\n", {"1:{\"text\":\"x\"}"}},
      {"BOM alone", "\xEF\xBB\xBF", {}},
      {"NUL and tabs kept", std::string("a\0b\tc\n", 6), {"1:{\"text\":\"a\\u0000b\\tc\"}"}},
      {"empty", "", {}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(read_as(Format::kLines, c.in) == c.want);
  }
}

TEST_CASE("lines: invalid UTF-8, and skip mode") {
  read_error(Format::kLines, "ok\nab\xC0\x80\n", {"/in:2: invalid UTF-8 at byte 3"});
  std::int64_t bad = 0;
  CHECK(read_as(Format::kLines, "a\n\xED\xA0\x80\nb\n", OnBad::kSkip, &bad) == Lines{"1:{\"text\":\"a\"}", "3:{\"text\":\"b\"}"});
  CHECK(bad == 1);
}

TEST_CASE("lines: next_line gives the same lines without records") {
  hf::test::TempDir dir;
  const std::string path = dir.file("in.txt");
  write_bytes(path, "x\n\ny z\r\nlast");
  hf::io::RecordReader reader(path, Format::kLines);
  std::string_view line;
  Lines got;
  while (reader.next_line(line)) got.push_back(std::to_string(reader.line_number()) + ":" + std::string(line));
  CHECK(got == Lines{"1:x", "2:", "3:y z\r", "4:last"});
  hf::io::RecordReader csv(path, Format::kCsv);
  expect_error([&] { csv.next_line(line); }, ErrorKind::kInternal, {"kLines"});
}

TEST_CASE("readers: missing input, directory, format from path") {
  expect_error([] { hf::io::RecordReader("/nonexistent/x.jsonl", Format::kJsonl); }, ErrorKind::kNoInput,
               {"/nonexistent/x.jsonl"});
  hf::test::TempDir dir;
  expect_error([&] { hf::io::RecordReader(dir.path(), Format::kLines); }, ErrorKind::kNoInput, {"is a directory"});

  struct Case {
    const char* path;
    Format want;
  };
  const Case cases[] = {{"a.jsonl", Format::kJsonl}, {"d/a.JSON", Format::kJsonl}, {"a.ndjson", Format::kJsonl},
                        {"a.csv", Format::kCsv},     {"a.tsv", Format::kTsv},      {"x.y/a.txt", Format::kLines}};
  for (const auto& c : cases) {
    CAPTURE(c.path);
    CHECK(hf::io::format_from_path(c.path) == c.want);
  }
  for (const char* p : {"a.parquet", "a", "dir.csv/a", "-"})
    expect_error([&] { hf::io::format_from_path(p); }, ErrorKind::kUsage, {"--format"});
}

namespace {

// Feeds `content` through a FIFO (a pipe, so the reader takes the block-buffer path) and returns
// the lines next_line() gives.
Lines lines_through_fifo(const std::string& content) {
  hf::test::TempDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::thread writer([&] {
    int fd = ::open(fifo.c_str(), O_WRONLY);
    std::size_t off = 0;
    while (off < content.size()) {
      // Odd chunk sizes so lines straddle reads.
      ssize_t n = ::write(fd, content.data() + off, std::min<std::size_t>(content.size() - off, 65521));
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(fd);
  });
  Lines got;
  {
    hf::io::RecordReader reader(fifo, Format::kLines);
    std::string_view line;
    while (reader.next_line(line)) got.emplace_back(line);
  }
  writer.join();
  return got;
}

}  // namespace

TEST_CASE("lines: pipes, lines across block boundaries, a line longer than the buffer") {
  Lines want;
  std::string content = "\xEF\xBB\xBF";
  for (int i = 0; i < 40000; ++i) {
    want.push_back(std::string(static_cast<std::size_t>(i % 97), static_cast<char>('a' + i % 26)));
    if (i == 20000) want.back() = std::string(3 << 20, 'L');  // 3 MiB: the buffer must grow twice
    if (i == 20001) want.back() = "caf\xC3\xA9";
    content += want.back() + "\n";
  }
  content += "tail";
  want.push_back("tail");
  CHECK(lines_through_fifo(content) == want);
  CHECK(lines_through_fifo("").empty());
  CHECK(lines_through_fifo("\xEF\xBB\xBF") == Lines{});
  CHECK(lines_through_fifo("a") == Lines{"a"});
}

TEST_CASE("readers: \"-\" reads stdin (pipe and redirected file)") {
  int saved = ::dup(0);
  REQUIRE(saved >= 0);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const std::string content = "{\"a\":1}\n{\"a\":2}\n";
  REQUIRE(::write(fds[1], content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::close(fds[1]);
  ::dup2(fds[0], 0);
  ::close(fds[0]);
  std::vector<std::string> got;
  std::string name;
  {
    hf::io::RecordReader reader("-", Format::kJsonl);
    name = reader.display_name();
    while (auto r = reader.next()) got.push_back(r->value.dump());
  }
  CHECK(name == "<stdin>");
  CHECK(got == std::vector<std::string>{"{\"a\":1}", "{\"a\":2}"});

  // stdin redirected from a regular file, already partly consumed: reading starts where it stands.
  hf::test::TempDir dir;
  write_bytes(dir.file("f"), "skip\nx\n\xFF\n");
  int fd = ::open(dir.file("f").c_str(), O_RDONLY);
  REQUIRE(::lseek(fd, 5, SEEK_SET) == 5);
  ::dup2(fd, 0);
  ::close(fd);
  std::string error;
  got.clear();
  try {
    hf::io::RecordReader reader("-", Format::kLines);
    while (auto r = reader.next()) got.push_back(r->value["text"]);
  } catch (const hf::Error& e) {
    error = e.what();
  }
  ::dup2(saved, 0);
  ::close(saved);
  CHECK(got == std::vector<std::string>{"x"});
  CHECK(error == "<stdin>:2: invalid UTF-8 at byte 1");
}

TEST_CASE("fields: require_string and require_labels") {
  Record r{7, nlohmann::ordered_json::parse(
                  R"({"text":"hi","n":3,"l":"pos","i":2,"m":["a","b"],"e":[],"bad":[1],"f":1.5,"o":{}})"), {}};
  CHECK(hf::io::require_string(r, "text", "f.jsonl") == "hi");
  expect_error([&] { hf::io::require_string(r, "missing", "f.jsonl"); }, ErrorKind::kDataErr,
               {"f.jsonl:7: field \"missing\": missing"});
  expect_error([&] { hf::io::require_string(r, "n", "f.jsonl"); }, ErrorKind::kDataErr,
               {"f.jsonl:7: field \"n\": expected a string"});

  auto l = hf::io::require_labels(r, "l", "f");
  CHECK(l.values == std::vector<std::string>{"pos"});
  CHECK_FALSE(l.is_list);
  CHECK(hf::io::require_labels(r, "i", "f").values == std::vector<std::string>{"2"});
  auto m = hf::io::require_labels(r, "m", "f");
  CHECK(m.values == std::vector<std::string>{"a", "b"});
  CHECK(m.is_list);
  CHECK(hf::io::require_labels(r, "e", "f").is_list);
  expect_error([&] { hf::io::require_labels(r, "bad", "f"); }, ErrorKind::kDataErr, {"f:7: field \"bad\": expected a list of strings"});
  for (const char* field : {"f", "o"})
    expect_error([&] { hf::io::require_labels(r, field, "f"); }, ErrorKind::kDataErr,
                 {"expected a string, an integer or a list of strings"});
  expect_error([&] { hf::io::require_labels(r, "zz", "f"); }, ErrorKind::kDataErr, {"f:7: field \"zz\": missing"});
}

TEST_CASE("utf8: well-formed sequences and the first bad byte") {
  struct Case {
    std::string in;
    std::size_t want;
  };
  const auto ok = std::string_view::npos;
  const Case cases[] = {
      {"", ok},
      {"plain ascii text, longer than eight bytes", ok},
      {"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", ok},  // é € 😀
      {"\xC2\x80\xDF\xBF", ok},                      // U+0080, U+07FF
      {"\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF", ok},  // U+0800, U+D7FF, U+E000, U+FFFF
      {"\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", ok},                  // U+10000, U+10FFFF
      {"\xC0\x80", 0},                                            // overlong NUL
      {"abc\xC1\xBF", 3},                                         // overlong
      {"\xE0\x9F\xBF", 0},                                        // overlong 3-byte
      {"\xF0\x8F\xBF\xBF", 0},                                    // overlong 4-byte
      {"x\xED\xA0\x80", 1},                                       // surrogate U+D800
      {"\xF4\x90\x80\x80", 0},                                    // U+110000
      {"\xF5\x80\x80\x80", 0},
      {"\xFF", 0},
      {"12345678\x80", 8},                                        // lone continuation after a fast block
      {"\xE2\x82", 0},                                            // truncated at the end
      {"\xE2\x82x", 0},
      {"\xF0\x9F\x98", 0},
      {"\xC3\xA9\xC3", 2},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(hf::io::find_invalid_utf8(c.in) == c.want);
  }
}

TEST_CASE("jsonl: nesting is bounded, and the bound names the line") {
  const auto nested = [](int depth) { return "{\"a\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}\n"; };
  CHECK(read_as(Format::kJsonl, nested(hf::io::kMaxJsonDepth)).size() == 1);
  read_error(Format::kJsonl, "{}\n" + nested(hf::io::kMaxJsonDepth + 1), {"/in:2: JSON nested deeper than 512 levels"});
  // 100k levels (the crash of issue 9): refused before anything recurses over it.
  read_error(Format::kJsonl, nested(100000), {"/in:1: JSON nested deeper than"});
  // Brackets inside strings do not count.
  CHECK(read_as(Format::kJsonl, "{\"a\":\"" + std::string(2000, '[') + "\"}\n").size() == 1);
  std::int64_t bad = 0;
  CHECK(read_as(Format::kJsonl, nested(600) + "{\"a\":1}\n", OnBad::kSkip, &bad).size() == 1);
  CHECK(bad == 1);
}

TEST_CASE("passthrough: fields come out byte for byte as read") {
  struct Case {
    const char* name;
    std::string in;
    std::string want;  // with `drop` {"x"} and no extra
  };
  const Case cases[] = {
      {"big integer keeps its digits", R"({"id": 12345678901234567890123456789, "t": "a"})",
       R"({"id":12345678901234567890123456789,"t":"a"})"},
      {"float spellings kept", R"({"a":1.0,"b":1e5,"c":-0.0,"d":0.1000000000000000055511151231257827})",
       R"({"a":1.0,"b":1e5,"c":-0.0,"d":0.1000000000000000055511151231257827})"},
      {"escapes kept", R"({"t":"caf\u00e9 \"q\" \/"})", R"({"t":"caf\u00e9 \"q\" \/"})"},
      {"inner whitespace of values kept", R"({ "a" : [1, 2 , {"b" :3}] , "c":{ } })", R"({"a":[1, 2 , {"b" :3}],"c":{ }})"},
      {"dropped field", R"({"x":1,"a":2,"x":3})", R"({"a":2})"},
      {"repeat: first place, last value", R"({"a":1,"b":2,"a":3})", R"({"a":3,"b":2})"},
      {"escaped key still matches drop", R"({"\u0078":1,"b":"}"})", R"({"b":"}"})"},
      {"empty object", "{}", "{}"},
  };
  const std::string_view drop[] = {"x"};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    hf::test::TempDir dir;
    write_bytes(dir.file("in.jsonl"), c.in + "\n");
    auto records = hf::io::read_all(dir.file("in.jsonl"), Format::kJsonl);
    REQUIRE(records.size() == 1);
    std::string out;
    hf::io::append_passthrough(out, records[0], drop, {});
    CHECK(out == c.want);
    // The same text parses to the same value (nothing but whitespace changed).
    CHECK(nlohmann::ordered_json::parse(out) == [&] {
      auto v = records[0].value;
      v.erase("x");
      return v;
    }());
  }
  // Extra members go last; CSV records (no raw text) are escaped from their string values.
  hf::test::TempDir dir;
  write_bytes(dir.file("in.csv"), "text,n\n\"a \"\"q\"\"\",12345678901234567890\n");
  auto csv = hf::io::read_all(dir.file("in.csv"), Format::kCsv);
  std::string out;
  hf::io::append_passthrough(out, csv[0], {}, R"("p":1)");
  CHECK(out == R"({"text":"a \"q\"","n":"12345678901234567890","p":1})");
}

TEST_CASE("fields: integer labels are told apart from strings") {
  Record r{1, nlohmann::ordered_json::parse(R"({"s":"1","i":1,"l":["1"]})"), {}};
  CHECK_FALSE(hf::io::require_labels(r, "s", "f").is_integer);
  CHECK(hf::io::require_labels(r, "i", "f").is_integer);
  CHECK(hf::io::require_labels(r, "s", "f").values == hf::io::require_labels(r, "i", "f").values);
  CHECK_FALSE(hf::io::require_labels(r, "l", "f").is_integer);
}
