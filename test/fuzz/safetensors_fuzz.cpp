// libFuzzer target for the safetensors reader: any bytes must either parse or throw hf::Error —
// never crash, read out of bounds or hit undefined behaviour (built with ASan + UBSan). A file that
// parses must survive a round trip through SafetensorsWriter unchanged.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "core/error.h"
#include "io/io.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hf::io;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  SafetensorsFile file;
  try {
    file = SafetensorsFile::from_buffer(bytes, "fuzz");
  } catch (const hf::Error&) {
    return 0;
  }
  // Touch every byte of every tensor (ASan checks the bounds) and the typed views.
  unsigned sum = 0;
  SafetensorsWriter writer;
  for (const TensorView& t : file.tensors()) {
    for (std::byte b : t.bytes()) sum += static_cast<unsigned>(b);
    if (t.dtype == DType::kF32) sum += static_cast<unsigned>(t.as_f32().size());
    if (t.dtype == DType::kI64) sum += static_cast<unsigned>(t.as_i64().size());
    if (t.dtype == DType::kBool) {
      try {
        sum += static_cast<unsigned>(t.as_bool().size());
      } catch (const hf::Error&) {
      }
    }
    if (file.find(t.name) != &t) __builtin_trap();
    writer.add(t.name, t.dtype, t.shape, t.bytes());
  }
  writer.set_metadata(file.metadata());
  // Round trip: what we write, we read back identically.
  const std::string again = writer.serialize();
  SafetensorsFile back = SafetensorsFile::from_buffer(
      std::as_bytes(std::span<const char>(again.data(), again.size())), "round trip");
  if (back.tensors().size() != file.tensors().size() || back.metadata() != file.metadata()) __builtin_trap();
  for (const TensorView& t : file.tensors()) {
    const TensorView* u = back.find(t.name);
    if (u == nullptr || u->dtype != t.dtype || u->shape != t.shape || u->nbytes != t.nbytes ||
        (t.nbytes > 0 && std::memcmp(u->data, t.data, t.nbytes) != 0))
      __builtin_trap();
  }
  return static_cast<int>(sum & 0);
}
