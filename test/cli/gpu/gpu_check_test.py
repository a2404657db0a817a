"""gpu-check without a GPU: the no-driver answer (also with the CUDA toolkit's stub libcuda), the JSON
report against tools/gpu-check/report.schema.json, exit codes, start-up time, the fatbin's code
images (cuobjdump, NVIDIA's own tool), the libtorch module against Python torch, and a driver
whose cuInit hangs (a stub libcuda.so.1 built here)."""
import ctypes
import json
import os
import re
import statistics
import subprocess
import time

import jsonschema

from hfkit_testlib import Skip, main, run, tempdir, tool

GPU_CHECK = tool("gpu-check")
SRC = os.environ["HFKIT_SOURCE_DIR"]
SCHEMA = json.load(open(os.path.join(SRC, "tools/gpu-check/report.schema.json")))
ARCHS = [a for a in os.environ.get("HFKIT_CUDA_ARCHS", "").split(",") if a]  # CMAKE_CUDA_ARCHITECTURES
STARTUP_BOUND_S = 1.0  # a sanity bound for "well under a second", not a benchmark


def no_driver_env(tmp):
    """A library path with no libcuda.so.1 (this machine has none installed)."""
    return {"LD_LIBRARY_PATH": tmp}


def stub_env(tmp):
    """libcuda.so.1 -> the CUDA toolkit's stub, first on the library path."""
    stub = os.path.join(os.environ["CUDA_STUB_DIR"], "libcuda.so")
    assert os.path.exists(stub), f"CUDA toolkit stub missing: {stub}"
    link = os.path.join(tmp, "libcuda.so.1")
    if not os.path.islink(link):
        os.symlink(stub, link)
    return {"LD_LIBRARY_PATH": tmp}


def validate(report):
    jsonschema.validate(report, SCHEMA, cls=jsonschema.Draft202012Validator)


# LD_LIBRARY_PATH cannot hide a driver installed system-wide: the no-driver tests only run without one
# (the stub tests always run: LD_LIBRARY_PATH comes before the system's libraries).
HAS_DRIVER = "libcuda.so.1" in subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout


def skip_with_driver():
    if HAS_DRIVER:
        raise Skip("a CUDA driver is installed system-wide here: LD_LIBRARY_PATH cannot hide it")


def test_no_driver_text_report_exits_0():
    skip_with_driver()
    with tempdir() as tmp:
        p = run([GPU_CHECK], env=no_driver_env(tmp), check=0)
    assert p.stderr == "", p.stderr
    assert re.search(r"^gpu\s+none: no CUDA driver: libcuda\.so\.1: cannot open shared object file", p.stdout, re.M), p.stdout
    assert "result: PASS (no GPU: nothing to check)" in p.stdout, p.stdout
    built = "CUDA runtime " if ARCHS else "built without CUDA"
    assert built in p.stdout.splitlines()[0], p.stdout


def test_no_driver_require_gpu_exits_69_with_one_line():
    skip_with_driver()
    with tempdir() as tmp:
        p = run([GPU_CHECK, "--require-gpu"], env=no_driver_env(tmp), check=69)
        assert p.stdout == "", p.stdout
        assert len(p.stderr.splitlines()) == 1, p.stderr
        assert p.stderr.startswith("gpu-check: error: no CUDA driver: libcuda.so.1: cannot open"), p.stderr
        # The environment variable does the same as the flag.
        run([GPU_CHECK], env={**no_driver_env(tmp), "HFKIT_REQUIRE_GPU": "1"}, check=69)


def test_stub_driver_is_named_as_a_stub():
    with tempdir() as tmp:
        env = stub_env(tmp)
        p = run([GPU_CHECK, "--require-gpu"], env=env, check=69)
        lines = p.stderr.splitlines()
        assert len(lines) == 1, p.stderr
        assert "is the CUDA toolkit's stub library, not a driver" in lines[0], lines[0]
        assert "CUDA_ERROR_STUB_LIBRARY (34)" in lines[0], lines[0]
        report = json.loads(run([GPU_CHECK, "--json"], env=env, check=0).stdout)
    validate(report)
    assert report["driver"]["loaded"] is True
    assert report["driver"]["library"].endswith("libcuda.so.1"), report["driver"]
    assert report["gpu_available"] is False
    assert "stub" in report["reason"]
    assert report["nvml"]["loaded"] is False  # NVML is not even tried without a working driver


def test_json_report_matches_schema():
    skip_with_driver()
    with tempdir() as tmp:
        p = run([GPU_CHECK, "--json"], env=no_driver_env(tmp), check=0)
        lines = p.stdout.splitlines()
        assert len(lines) == 1, "one JSON object on one line"
        report = json.loads(lines[0])
        validate(report)
        assert report["schema_version"] == 1 and report["tool"] == "gpu-check"
        assert report["driver"]["loaded"] is False and report["driver"]["library"] is None
        assert report["gpu_available"] is False and report["devices"] == [] and report["passed"] is True
        assert report["build"]["cuda"] is bool(ARCHS)
        if ARCHS:
            assert report["build"]["cuda_archs"] == ",".join(ARCHS)
        # With --require-gpu the object still comes on stdout, before the error line and exit 69.
        p = run([GPU_CHECK, "--json", "--require-gpu", "--expect-devices", "8"], env=no_driver_env(tmp), check=69)
        report = json.loads(p.stdout)
        validate(report)
        assert report["passed"] is False
        assert [c["name"] for c in report["checks"]] == ["gpu", "device_count"]
        assert all(c["status"] == "fail" and c["device"] is None for c in report["checks"])
        assert report["checks"][0]["detail"] == report["reason"]


def test_schema_rejects_what_it_should():
    skip_with_driver()
    # Guards the schema itself: a report missing a field, with an unknown check or a bad status fails.
    with tempdir() as tmp:
        good = json.loads(run([GPU_CHECK, "--json", "--expect-devices", "0"], env=no_driver_env(tmp), check=0).stdout)
    validate(good)
    bad_cases = [
        {k: v for k, v in good.items() if k != "passed"},
        {**good, "extra": 1},
        {**good, "checks": [{**good["checks"][0], "status": "ok"}]},
        {**good, "checks": [{**good["checks"][0], "name": "vibes"}]},
        {**good, "devices": [{"index": 0, "name": "x"}]},
    ]
    for bad in bad_cases:
        try:
            validate(bad)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"schema accepted {bad}")


def test_expect_devices_without_gpu():
    skip_with_driver()
    with tempdir() as tmp:
        env = no_driver_env(tmp)
        p = run([GPU_CHECK, "--expect-devices", "2"], env=env, check=1)
        assert re.search(r"^FAIL\s+device_count .*expected 2 device\(s\), found none", p.stdout, re.M), p.stdout
        run([GPU_CHECK, "--expect-devices", "0"], env=env, check=0)
        # Without --require-gpu, a machine without a GPU passes the capability demand (nothing to check).
        run([GPU_CHECK, "--min-compute-capability", "9.0"], env=env, check=0)


def test_bad_flags_exit_64():
    cases = [
        (["--bogus"], "--bogus"),
        (["--device", "abc"], "--device"),
        (["--memory-fraction", "2"], "--memory-fraction"),
        (["--min-compute-capability", "nine"], "--min-compute-capability"),
        (["--expect-devices", "-5"], "--expect-devices"),
        (["--json", "extra-arg"], "extra-arg"),
        # NaN passes every range comparison: refused as not finite; infinities and negatives too.
        (["--memory-fraction", "nan"], "--memory-fraction"),
        (["--memory-fraction", "inf"], "--memory-fraction"),
        (["--memory-fraction", "-0.5"], "--memory-fraction"),
        (["--min-compute-capability", "nan"], "--min-compute-capability"),
        (["--min-compute-capability", "-inf"], "--min-compute-capability"),
        (["--driver-timeout", "nan"], "--driver-timeout"),
        (["--driver-timeout", "-1"], "--driver-timeout"),
    ]
    for args, fragment in cases:
        p = run([GPU_CHECK] + args, check=64)
        assert p.stdout == "", (args, p.stdout)
        assert p.stderr.startswith("gpu-check: error: "), (args, p.stderr)
        assert fragment in p.stderr, (args, p.stderr)


def test_no_driver_answer_is_fast_and_does_not_load_libtorch():
    skip_with_driver()
    needed = run(["readelf", "-d", GPU_CHECK], check=0).stdout
    for lib in ["libtorch", "libc10", "libcudart.so", "libcuda.so", "libnccl"]:
        assert lib not in needed, f"gpu-check links {lib}: the no-driver answer would pay for loading it"
    with tempdir() as tmp:
        env = {**os.environ, **no_driver_env(tmp)}
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            code = subprocess.run([GPU_CHECK, "--require-gpu"], env=env, capture_output=True).returncode
            times.append(time.perf_counter() - t0)
            assert code == 69
        loaded = subprocess.run([GPU_CHECK, "--require-gpu"], env={**env, "LD_DEBUG": "files"},
                                capture_output=True, text=True).stderr
    assert "libtorch" not in loaded, "libtorch was loaded on the no-driver path"
    median = statistics.median(times)
    print(f"  no-driver answer: median {median * 1000:.1f} ms over {len(times)} runs (bound {STARTUP_BOUND_S} s)")
    assert median < STARTUP_BOUND_S, times


# A libcuda.so.1 whose cuInit never returns (a wedged GPU or driver); the other entry points gpu-check
# binds exist so that only cuInit is tested.
HANGING_DRIVER_C = r"""
#include <unistd.h>
int cuInit(unsigned flags) { for (;;) pause(); }
int cuDriverGetVersion(int* version) { *version = 13000; return 0; }
int cuDeviceGetCount(int* count) { *count = 1; return 0; }
int cuDeviceGet(int* dev, int index) { *dev = index; return 0; }
int cuDeviceGetName(char* name, int len, int dev) { return 999; }
int cuDeviceGetAttribute(int* value, int attr, int dev) { return 999; }
int cuDeviceTotalMem_v2(unsigned long* bytes, int dev) { return 999; }
int cuDeviceGetPCIBusId(char* id, int len, int dev) { return 999; }
"""


def hanging_driver_env(tmp):
    src = os.path.join(tmp, "hang.c")
    with open(src, "w") as f:
        f.write(HANGING_DRIVER_C)
    run(["cc", "-shared", "-fPIC", "-o", os.path.join(tmp, "libcuda.so.1"), src], check=0)
    return {"LD_LIBRARY_PATH": tmp}


def test_hanging_cuinit_ends_within_the_timeout():
    with tempdir() as tmp:
        env = hanging_driver_env(tmp)
        t0 = time.monotonic()
        p = run([GPU_CHECK, "--require-gpu", "--driver-timeout", "1"], env=env, check=69, timeout=60)
        took = time.monotonic() - t0
        assert p.stdout == "", p.stdout
        lines = p.stderr.splitlines()
        assert len(lines) == 1, p.stderr
        assert lines[0].startswith("gpu-check: error: CUDA driver "), lines[0]
        assert lines[0].endswith("libcuda.so.1 hangs: cuInit did not return within 1 s"), lines[0]
        print(f"  hung cuInit: answer after {took:.2f} s (timeout 1 s)")
        assert took < 10, took
        # Without --require-gpu a hanging driver is still a failed machine, not "no GPU".
        p = run([GPU_CHECK, "--json", "--driver-timeout", "0.5"], env=env, check=1, timeout=60)
        report = json.loads(p.stdout)
    validate(report)
    assert report["passed"] is False and report["gpu_available"] is False
    assert report["driver"]["loaded"] is True
    assert [(c["name"], c["status"]) for c in report["checks"]] == [("gpu", "fail")], report["checks"]
    assert "cuInit did not return within 0.5 s" in report["reason"], report["reason"]


def cuobjdump(flag):
    exe = os.environ.get("HFKIT_CUOBJDUMP", "")
    assert exe and os.path.exists(exe), "cuobjdump not found (CUDA toolkit or torch's triton package)"
    return run([exe, flag, GPU_CHECK], check=0).stdout


def test_fatbin_carries_the_configured_cubins_and_ptx():
    if not ARCHS:
        raise Skip("built without CUDA (HFKIT_CUDA=OFF): no fatbin to inspect")
    real = sorted(a.split("-")[0] for a in ARCHS if not a.endswith("-virtual"))
    virtual = sorted(a.split("-")[0] for a in ARCHS if not a.endswith("-real"))
    elf = re.findall(r"\.sm_(\d+a?)\.cubin", cuobjdump("--list-elf"))
    ptx = re.findall(r"\.sm_(\d+a?)\.ptx", cuobjdump("--list-ptx"))  # cuobjdump names compute_XY PTX sm_XY.ptx
    print(f"  cubins: {', '.join('sm_' + a for a in elf)}; PTX: {', '.join('compute_' + a for a in ptx)}")
    assert sorted(set(elf)) == real, (elf, ARCHS)
    assert sorted(set(ptx)) == virtual, (ptx, ARCHS)
    # The floor: A100 and H100 cubins, PTX for GPUs newer than the newest cubin.
    assert {"80", "90"} <= set(elf), elf
    assert max(map(int, ptx)) >= max(map(int, real)), (ptx, real)


def test_torch_module_agrees_with_python_torch():
    import torch  # the peer: the same wheel whose libtorch the module links

    # gpu-check looks for the module at <its dir>/../lib/<file> (lib/gpu/check.cpp).
    module_file = re.search(r'kTorchModuleFile = "([^"]+)"',
                            open(os.path.join(SRC, "lib/gpu/torch_module.h")).read()).group(1)
    beside = os.path.join(os.path.dirname(GPU_CHECK), "..", "lib", module_file)
    assert os.path.samefile(beside, os.environ["HFKIT_GPU_TORCH_MODULE"]), beside

    lib = ctypes.CDLL(os.environ["HFKIT_GPU_TORCH_MODULE"])
    lib.hfkit_gpu_torch_check.restype = ctypes.c_void_p
    lib.hfkit_gpu_torch_check.argtypes = [ctypes.c_char_p]
    lib.hfkit_gpu_torch_free.argtypes = [ctypes.c_void_p]
    ptr = lib.hfkit_gpu_torch_check(b'{"devices": []}')
    answer = json.loads(ctypes.string_at(ptr).decode())
    lib.hfkit_gpu_torch_free(ptr)
    assert answer["error"] == "", answer
    assert answer["torch_version"] == torch.__version__.split("+")[0], answer
    assert answer["cuda_available"] == torch.cuda.is_available(), answer
    assert answer["device_count"] == torch.cuda.device_count(), answer
    assert answer["arch_list"].split() == torch.cuda.get_arch_list(), answer
    assert answer["cuda_runtime"] == torch.version.cuda, answer
    # A malformed request is reported in the answer, not thrown across the C boundary.
    ptr = lib.hfkit_gpu_torch_check(b"{not json")
    bad = json.loads(ctypes.string_at(ptr).decode())
    lib.hfkit_gpu_torch_free(ptr)
    assert bad["error"], bad


if __name__ == "__main__":
    main(globals())
