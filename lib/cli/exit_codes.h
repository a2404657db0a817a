// The one place exit codes are decided (<sysexits.h> numbering, see README "Exit codes").
#pragma once

#include "core/error.h"

namespace hf::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitNo = 1;  // ran fine, the answer is "no" (gate missed, check failed)
inline constexpr int kExitUsage = 64;
inline constexpr int kExitDataErr = 65;
inline constexpr int kExitNoInput = 66;
inline constexpr int kExitUnavailable = 69;
inline constexpr int kExitSoftware = 70;
inline constexpr int kExitCantCreate = 73;
inline constexpr int kExitIoErr = 74;
inline constexpr int kExitTempFail = 75;
inline constexpr int kExitNoPerm = 77;
inline constexpr int kExitConfig = 78;

constexpr int exit_code_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage: return kExitUsage;
    case ErrorKind::kDataErr: return kExitDataErr;
    case ErrorKind::kNoInput: return kExitNoInput;
    case ErrorKind::kUnavailable: return kExitUnavailable;
    case ErrorKind::kInternal: return kExitSoftware;
    case ErrorKind::kCantCreate: return kExitCantCreate;
    case ErrorKind::kIo: return kExitIoErr;
    case ErrorKind::kTempFail: return kExitTempFail;
    case ErrorKind::kNoPerm: return kExitNoPerm;
    case ErrorKind::kConfig: return kExitConfig;
  }
  return kExitSoftware;
}

constexpr int exit_code_for(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk: return kExitOk;
    case Outcome::kNo: return kExitNo;
    case Outcome::kPreempted: return kExitTempFail;
  }
  return kExitSoftware;
}

// Text for every --help epilogue.
inline constexpr const char* kExitCodeHelp =
    "Exit codes: 0 ok, 1 answer is no (gate/check failed), 64 usage, 65 bad input data,\n"
    "  66 input missing, 69 unavailable, 70 internal error, 73 cannot create output,\n"
    "  74 I/O error, 75 temporary failure/preempted (retry), 77 permission denied, 78 bad config.";

}  // namespace hf::cli
