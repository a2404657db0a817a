"""The whole gpu-check on a machine with a GPU (label gpu): every check must pass and the report must
match the schema. Exits 69 (ctest: skipped) where there is no driver or device."""
import json
import os
import sys

import jsonschema

from hfkit_testlib import run, tool

GPU_CHECK = tool("gpu-check")
SCHEMA = json.load(open(os.path.join(os.environ["HFKIT_SOURCE_DIR"], "tools/gpu-check/report.schema.json")))


def main():
    p = run([GPU_CHECK, "--require-gpu"])
    sys.stdout.write(p.stdout + p.stderr)
    if p.returncode == 69:
        print("no GPU here: skipped")
        sys.exit(69)
    report = json.loads(run([GPU_CHECK, "--require-gpu", "--json", "--quick"]).stdout)
    jsonschema.validate(report, SCHEMA, cls=jsonschema.Draft202012Validator)
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    names = {c["name"] for c in report["checks"]}
    for name in ["driver_version", "nccl", "kernel_launch", "gemm", "memory", "torch_cuda", "torch_archs", "torch_matmul"]:
        if name not in names:
            failed.append({"name": name, "detail": "check missing from the report"})
    print(f"{len(report['checks']) - len(failed)} passed, {len(failed)} failed")
    for c in failed:
        print(f"FAIL {c['name']}: {c['detail']}")
    sys.exit(0 if p.returncode == 0 and not failed else 1)


if __name__ == "__main__":
    main()
