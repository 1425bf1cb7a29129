// cygnetctl: the command-line client of a running cygnet-dp (docs/cli.md).
// Injects and deletes SAs and policies, loads the static SAs and policies of
// a config file as one batch, and reads per-SA counters, over the
// shared-memory protocol (docs/shm.md) - whether or not cygnet-ike runs.
//
// The commands are a library so that tests drive them end to end against an
// in-process shm::ShmServer; main.cc only forwards argv.
#pragma once

#include <iosfwd>
#include <span>
#include <string>

namespace cygnet::ctl {

// Exit codes (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // the dataplane acked with an error status
inline constexpr int kExitUsage = 2;        // usage or validation error: nothing was sent
inline constexpr int kExitNotRunning = 3;   // no dataplane, it went away, or it did not answer

inline constexpr const char* kDefaultInstance = "default";

// Runs one cygnetctl invocation. `args` excludes the program name
// (argv[1..]). Results (tables, JSON) go to `out`; errors and warnings, one
// line each, to `err`. Key material is never written to either.
int run(std::span<const std::string> args, std::ostream& out, std::ostream& err);

}  // namespace cygnet::ctl
