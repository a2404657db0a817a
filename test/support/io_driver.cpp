// Test driver for the io golden tests (not a product tool): exposes hf::io's readers and the
// safetensors reader/writer on the command line so Python can compare them with its own csv, json
// and safetensors modules.
//   io_driver records FORMAT PATH [skip]  one line per record: {"line": N, "value": {...}};
//                                         skip mode logs every bad record (no cap) on stderr
//   io_driver lines PATH                  next_line(): one JSON string per line
//   io_driver st-dump PATH                {"metadata": {...}, "tensors": [{"name", "dtype", "shape",
//                                         "hex"}, ...]} in file order
//   io_driver st-write SPEC.json OUT      writes {"tensors": [{"name","dtype","shape","hex"}],
//                                         "metadata": {...}} with SafetensorsWriter
// Errors: "io_driver: error: ..." on stderr and the hfkit exit code of the error's kind.
#include <cstdio>
#include <iostream>

#include "cli/exit_codes.h"
#include "core/error.h"
#include "core/file.h"
#include "io/io.h"

namespace {

using hf::io::Format;

Format parse_format(const std::string& s) {
  if (s == "jsonl") return Format::kJsonl;
  if (s == "csv") return Format::kCsv;
  if (s == "tsv") return Format::kTsv;
  if (s == "lines") return Format::kLines;
  throw hf::Error(hf::ErrorKind::kUsage, "unknown format " + s);
}

std::string to_hex(std::span<const std::byte> b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (std::byte x : b) {
    out += kHex[static_cast<unsigned>(x) >> 4];
    out += kHex[static_cast<unsigned>(x) & 15];
  }
  return out;
}

std::string from_hex(const std::string& h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

int run(int argc, char** argv) {
  if (argc < 3) throw hf::Error(hf::ErrorKind::kUsage, "usage: io_driver records|lines|st-dump|st-write ...");
  const std::string cmd = argv[1];
  hf::io::JsonlWriter out("-");
  if (cmd == "records" && argc >= 4) {
    hf::io::ReaderOptions options;
    if (argc >= 5 && std::string(argv[4]) == "skip") {
      options.on_bad = hf::io::OnBad::kSkip;
      options.max_bad_logged = 1 << 30;
    }
    hf::io::RecordReader reader(argv[3], parse_format(argv[2]), options);
    while (auto r = reader.next()) out.write(nlohmann::ordered_json{{"line", r->line}, {"value", std::move(r->value)}});
    std::cerr << "bad_records=" << reader.bad_records() << "\n";
  } else if (cmd == "lines") {
    hf::io::RecordReader reader(argv[2], Format::kLines);
    std::string_view line;
    while (reader.next_line(line)) {
      hf::io::append_json_string(out.buffer(), line);
      out.buffer() += '\n';
      out.maybe_flush();
    }
  } else if (cmd == "st-dump") {
    hf::io::SafetensorsFile f = hf::io::SafetensorsFile::open(argv[2]);
    nlohmann::ordered_json j;
    j["metadata"] = f.metadata();
    j["tensors"] = nlohmann::json::array();
    for (const auto& t : f.tensors())
      j["tensors"].push_back({{"name", t.name}, {"dtype", hf::io::dtype_name(t.dtype)}, {"shape", t.shape},
                              {"hex", to_hex(t.bytes())}});
    out.write(j);
  } else if (cmd == "st-write" && argc >= 4) {
    const auto spec = nlohmann::json::parse(hf::read_file(argv[2]));
    std::vector<std::string> keep;  // the writer references the bytes
    keep.reserve(spec["tensors"].size());
    hf::io::SafetensorsWriter w;
    for (const auto& t : spec["tensors"]) {
      keep.push_back(from_hex(t["hex"].get<std::string>()));
      auto dtype = hf::io::dtype_from_name(t["dtype"].get<std::string>());
      if (!dtype) throw hf::Error(hf::ErrorKind::kUsage, "unknown dtype " + t["dtype"].get<std::string>());
      w.add(t["name"].get<std::string>(), *dtype, t["shape"].get<std::vector<std::int64_t>>(), keep.back());
    }
    if (spec.contains("metadata"))
      for (const auto& [k, v] : spec["metadata"].items()) w.set_metadata(k, v.get<std::string>());
    w.write(argv[3]);
  } else {
    throw hf::Error(hf::ErrorKind::kUsage, "bad arguments");
  }
  out.close();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const hf::Error& e) {
    std::cerr << "io_driver: error: " << e.what() << "\n";
    return hf::cli::exit_code_for(e.kind());
  } catch (const std::exception& e) {
    std::cerr << "io_driver: error: " << e.what() << "\n";
    return hf::cli::kExitSoftware;
  }
}
