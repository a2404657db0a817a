"""hf-predict loads libtorch's CUDA part only when a CUDA device may be used: the binary does not
link libtorch_cuda, a CPU run (--device cpu, or auto on a machine without an NVIDIA driver) never
maps it, and --device cuda loads it at run time (the error on a machine without a GPU names the
CUDA runtime that only the loaded libtorch_cuda can report). Start-up time itself is measured by
bench/predict_bench.py, not here."""
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
