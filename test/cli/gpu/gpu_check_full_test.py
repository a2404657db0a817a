"""The whole gpu-check on a machine with a GPU (label gpu). Whether there is a GPU is decided here, not
by gpu-check (whose failing to see one is what this must catch): NVIDIA device files
(/dev/nvidia0, ...) or NVML (libnvidia-ml.so.1 through ctypes) counting devices. Without either the
test is skipped; with one, the full check (not --quick, libtorch included) must exit 0, see the
devices, run every named check on every device with status pass, and match the schema."""
import ctypes
import glob
import json
import os

import jsonschema

from hfkit_testlib import Skip, main, run, skip_unless_ci, tool

GPU_CHECK = tool("gpu-check")
SCHEMA = json.load(open(os.path.join(os.environ["HFKIT_SOURCE_DIR"], "tools/gpu-check/report.schema.json")))
GLOBAL_CHECKS = ["driver_version", "device_count", "nccl", "torch_cuda"]
DEVICE_CHECKS = ["kernel_launch", "gemm", "memory", "bandwidth", "torch_archs", "torch_matmul"]


def nvml_device_count():
    """Devices NVML counts, or None when NVML is not there or does not start."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        count = ctypes.c_uint(0)
        return count.value if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 else None
    finally:
        nvml.nvmlShutdown()


def test_full_check_passes_on_every_gpu():
    nodes = sorted(glob.glob("/dev/nvidia[0-9]*"))
    counted = nvml_device_count()
    print(f"  device files: {nodes or 'none'}; NVML device count: {counted}")
    if not nodes and not counted:
        raise Skip("no GPU here: no /dev/nvidia[0-9]* device file, NVML counts none or is absent")
    if not os.environ.get("HFKIT_CUDA_ARCHS"):
        skip_unless_ci("a GPU is here but this build has no CUDA (HFKIT_CUDA=OFF): no kernels to check")
    # The driver's view honours CUDA_VISIBLE_DEVICES, NVML's does not: compare counts only without it.
    expected = counted if counted and "CUDA_VISIBLE_DEVICES" not in os.environ else max(len(nodes), 1)
    p = run([GPU_CHECK, "--require-gpu", "--json", "--expect-devices", str(expected)], timeout=600)
    print(p.stderr, end="")
    assert p.returncode == 0, f"gpu-check exit {p.returncode} on a machine with a GPU:\n{p.stdout}{p.stderr}"
    report = json.loads(p.stdout)
    jsonschema.validate(report, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert report["gpu_available"] is True and report["passed"] is True, report
    devices = [d["index"] for d in report["devices"]]
    assert len(devices) == expected, (devices, expected)
    got = {(c["name"], c["device"]): c for c in report["checks"]}
    wanted = [(name, None) for name in GLOBAL_CHECKS] + [(name, d) for d in devices for name in DEVICE_CHECKS]
    missing = [w for w in wanted if w not in got]
    not_passed = [f"{c['name']} dev{c['device']}: {c['status']}: {c['detail']}"
                  for c in report["checks"] if c["status"] != "pass"]
    for c in report["checks"]:
        print(f"  {c['status']:4} {c['name']} dev{c['device']}: {c['detail']}")
    assert not missing, f"checks missing from the report: {missing}"
    assert not not_passed, "checks that did not pass: " + "; ".join(not_passed)


if __name__ == "__main__":
    main(globals())
