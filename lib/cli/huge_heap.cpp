// Linked into hf-predict only (tools/CMakeLists.txt): before any shared library initialises, the
// process re-executes itself with glibc's malloc asked to back its heap with 2 MiB pages.
//
// Why: libtorch's static registration mallocs ~50 MB in small pieces before main(). On a 4 KiB
// heap that is ~12,000 page faults, 60-100 ms of the ~0.4 s a one-record cron job waits
// (bench/README.md). glibc's tunable glibc.malloc.hugetlb=1 madvises the heap for transparent huge
// pages (~3,900 faults), but tunables are read once, by the dynamic loader, from the environment
// the process started with: only a fresh exec can apply it. An ELF .preinit_array function runs
// after the libraries are mapped and relocated (~10 ms) and before any of their initialisers, so
// the exec repeats only that part.
//
// Not done when it cannot help or the user decided: GLIBC_TUNABLES already names the tunable (=0
// opts out), the kernel's THP mode is not "madvise" ("always" gives huge pages anyway, "never"
// none), the process is set-uid (the loader ignores tunables there), or the exec fails (then the
// run goes on as it started). At this point the C library is not initialised: only the arguments
// handed in, raw system calls and malloc are used, not getenv/setenv.
#include <fcntl.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace {

constexpr char kTunables[] = "GLIBC_TUNABLES=";
constexpr char kHugetlb[] = "glibc.malloc.hugetlb";
constexpr char kThpMode[] = "/sys/kernel/mm/transparent_hugepage/enabled";

bool thp_mode_is_madvise() {
  const int fd = ::open(kThpMode, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return std::strstr(buf, "[madvise]") != nullptr;
}

// envp with GLIBC_TUNABLES extended by (or set to) glibc.malloc.hugetlb=1; nullptr when the user's
// GLIBC_TUNABLES already names it, or on allocation failure.
char** with_huge_heap(char** envp) {
  std::size_t count = 0;
  char** tunables = nullptr;
  for (char** e = envp; *e != nullptr; ++e, ++count)
    if (std::strncmp(*e, kTunables, sizeof kTunables - 1) == 0) tunables = e;
  if (tunables != nullptr && std::strstr(*tunables, kHugetlb) != nullptr) return nullptr;
  const char* old = tunables != nullptr ? *tunables + sizeof kTunables - 1 : "";
  const std::size_t size = sizeof kTunables + std::strlen(old) + 1 + sizeof kHugetlb + 2;
  char* value = static_cast<char*>(std::malloc(size));
  char** env = static_cast<char**>(std::malloc((count + 2) * sizeof(char*)));
  if (value == nullptr || env == nullptr) return nullptr;
  std::strcpy(value, kTunables);
  if (*old != '\0') {
    std::strcat(value, old);
    std::strcat(value, ":");
  }
  std::strcat(value, kHugetlb);
  std::strcat(value, "=1");
  std::size_t i = 0;
  for (char** e = envp; *e != nullptr; ++e) env[i++] = e == tunables ? value : *e;
  if (tunables == nullptr) env[i++] = value;
  env[i] = nullptr;
  return env;
}

void reexec_with_huge_heap(int /*argc*/, char** argv, char** envp) {
  if (argv == nullptr || envp == nullptr || ::getauxval(AT_SECURE) != 0) return;
  if (!thp_mode_is_madvise()) return;
  char** env = with_huge_heap(envp);
  if (env == nullptr) return;
  ::execve("/proc/self/exe", argv, env);  // returns only on failure: run on as started
}

}  // namespace

// The loader calls .preinit_array entries of the executable before every library's initialisers.
__attribute__((section(".preinit_array"), used)) void (*const hfkit_huge_heap_preinit)(int, char**, char**) =
    reexec_with_huge_heap;
