"""hf-predict loads libtorch's CUDA part only when a CUDA device may be used: the binary does not
link libtorch_cuda, a CPU run (--device cpu, or auto on a machine without an NVIDIA driver) never
maps it, and --device cuda loads it at run time (the error on a machine without a GPU names the
CUDA runtime that only the loaded libtorch_cuda can report). Before libtorch initialises, hf-predict
re-executes itself with glibc's malloc on 2 MiB heap pages (lib/cli/huge_heap.cpp): far fewer page
faults, the user's other GLIBC_TUNABLES kept, glibc.malloc.hugetlb=0 respected. Start-up time
itself is measured by bench/predict_bench.py, not here."""
import os
import re
import subprocess
import tempfile
import time

import torch

from hfkit_testlib import expect_error, main, make_tiny_bert, run, tool

PREDICT = tool("hf-predict")
WORK = tempfile.TemporaryDirectory(prefix="hfkit-device-test-")
CUDA_WHEEL = torch.version.cuda is not None  # libtorch ships libtorch_cuda.so
GPU = torch.cuda.is_available()


def tiny():
    out = os.path.join(WORK.name, "tiny")
    if not os.path.exists(out):
        make_tiny_bert(out)
    return out


def mapped_libraries(*flags):
    """The shared objects a serving hf-predict has mapped once its model is loaded."""
    log = os.path.join(WORK.name, "serve.log")
    with open(log, "w") as err:
        server = subprocess.Popen([PREDICT, "--model", tiny(), "--serve", "--port", "0", *flags], stderr=err)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            with open(log) as f:
                if "listening on http://" in f.read():
                    break
            time.sleep(0.1)
        assert server.poll() is None, open(log).read()
        with open(f"/proc/{server.pid}/maps") as f:
            return {os.path.basename(line.split()[-1]) for line in f if line.rstrip().endswith(".so") or ".so." in line}
    finally:
        server.terminate()
        server.wait(timeout=60)


def thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return re.search(r"\[(\w+)\]", f.read())[1]
    except OSError:
        return None


def minor_faults(tunables):
    """Minor page faults of `hf-predict --version` started with GLIBC_TUNABLES = tunables (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    p = subprocess.Popen([PREDICT, "--version"], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_minflt


def environment_once_running(tunables):
    """The raw environment block of a running hf-predict (waiting on its stdin, model loaded), and
    its output. Raw: glibc's loader splits GLIBC_TUNABLES in place at its ':' separators."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    p = subprocess.Popen([PREDICT, "--model", tiny(), "-q"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # The model is mapped after libtorch's start-up, so after any re-exec.
            with open(f"/proc/{p.pid}/maps") as f:
                if "model.safetensors" in f.read():
                    break
            time.sleep(0.05)
        with open(f"/proc/{p.pid}/environ", "rb") as f:
            environ = f.read()
        out, err = p.communicate(b'{"text": "good film"}\n', timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0, err
    return environ, out


def test_heap_on_huge_pages_before_libtorch_starts():
    if thp_mode() != "madvise":
        print(f"SKIP transparent huge pages are '{thp_mode()}', not 'madvise': nothing to ask for")
        return
    opted_out = minor_faults("glibc.malloc.hugetlb=0")
    default = minor_faults(None)
    kept = minor_faults("glibc.malloc.tcache_count=7")
    # Measured: ~16,300 faults opted out, ~5,000 otherwise.
    assert default < 0.6 * opted_out and kept < 0.6 * opted_out, (default, kept, opted_out)
    environ, out = environment_once_running(None)
    assert b"\0GLIBC_TUNABLES=glibc.malloc.hugetlb=1\0" in environ, environ
    assert b'"prediction"' in out
    environ, _ = environment_once_running("glibc.malloc.tcache_count=7")
    assert b"\0GLIBC_TUNABLES=glibc.malloc.tcache_count=7" in environ and b"glibc.malloc.hugetlb=1" in environ, environ
    environ, _ = environment_once_running("glibc.malloc.hugetlb=0")
    assert b"\0GLIBC_TUNABLES=glibc.malloc.hugetlb=0\0" in environ and b"hugetlb=1" not in environ, environ


def test_binary_does_not_link_libtorch_cuda():
    needed = run(["readelf", "-d", PREDICT], check=0).stdout
    assert "libtorch_cpu.so" in needed, needed
    assert "libtorch_cuda.so" not in needed and "libtorch.so" not in needed, needed


def test_cpu_run_never_maps_cuda():
    libs = mapped_libraries("--device", "cpu")
    assert "libtorch_cpu.so" in libs, sorted(libs)
    assert not any(name.startswith(("libtorch_cuda", "libcublas", "libcudnn")) for name in libs), sorted(libs)
    if not GPU:
        # auto on a machine without a GPU decides "cpu" without loading the CUDA libraries either.
        libs = mapped_libraries("--device", "auto")
        assert not any(name.startswith(("libtorch_cuda", "libcublas")) for name in libs), sorted(libs)


def test_device_cuda_loads_the_cuda_runtime():
    if not CUDA_WHEEL or GPU:
        print("skipped: needs a CUDA libtorch on a machine without a GPU")
        return
    p = expect_error([PREDICT, "--model", tiny(), "--device", "cuda"], 69, "no CUDA device available",
                     "NVIDIA driver", input='{"text": "hello"}\n')
    # Only ATen's real CUDA hooks (registered by the loaded libtorch_cuda) know the runtime version.
    assert re.search(r"CUDA runtime \d+\.\d+ loaded", p.stderr), p.stderr


if __name__ == "__main__":
    main(globals())
