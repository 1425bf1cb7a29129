// Records the machine a benchmark ran on in Google Benchmark's context, so
// every result printed or saved as JSON says where it came from.
#pragma once

#include <benchmark/benchmark.h>

#include <fstream>
#include <string>
#include <sys/utsname.h>

namespace cygnet::bench {

inline void add_machine_context() {
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) benchmark::AddCustomContext("cpu_model", line.substr(pos + 2));
      break;
    }
  }
  utsname u{};
  if (uname(&u) == 0) benchmark::AddCustomContext("kernel", std::string(u.sysname) + " " + u.release);
}

}  // namespace cygnet::bench
