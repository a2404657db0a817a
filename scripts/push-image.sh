#!/usr/bin/env bash
# Builds Dockerfile.cuda, tags the image and pushes it to AWS ECR, Google Artifact Registry or
# Azure Container Registry, logging in with that cloud's CLI. --dry-run prints the commands only.
# The CI workflow (.github/workflows/image.yml) calls this script; see docs/container.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/push-image.sh --registry ecr|gar|acr [options]

Builds Dockerfile.cuda and pushes it. Options (environment variable in brackets):
  --registry ecr|gar|acr  where to push                                         [HFKIT_REGISTRY]
  --repo NAME             repository name (default hfkit)                       [HFKIT_IMAGE_REPO]
  --tag TAG               image tag (default <commit>-cuda<CUDA_VERSION>)       [HFKIT_IMAGE_TAG]
  --also-tag TAG          push this tag too, e.g. latest (repeatable)
  --region REGION         ECR: AWS region; GAR: location, e.g. us-central1       [AWS_REGION / GAR_LOCATION]
  --account ID            ECR: AWS account id (default: aws sts get-caller-identity) [AWS_ACCOUNT_ID]
  --project ID            GAR: Google Cloud project id                          [GOOGLE_CLOUD_PROJECT]
  --image NAME            GAR: image name inside the repository (default hfkit)
  --registry-name NAME    ACR: registry name, pushed to NAME.azurecr.io          [ACR_NAME]
  --create-repo           ECR: create the repository when it does not exist
  --build-arg KEY=VALUE   passed to docker build (repeatable), e.g. CUDA_VERSION=12.8.1
  --platform PLATFORM     docker build --platform (default linux/amd64)
  --no-build              push the existing local image hfkit:TAG
  --dry-run               print the commands instead of running them
  -h, --help              this text

Login commands used:
  ecr  aws ecr get-login-password --region R | docker login --username AWS --password-stdin A.dkr.ecr.R.amazonaws.com
  gar  gcloud auth configure-docker LOCATION-docker.pkg.dev --quiet
  acr  az acr login --name NAME

Exit codes: 0 pushed (or printed), 64 bad arguments, other: the failing command's code.
Examples:
  scripts/push-image.sh --registry ecr --region us-east-1 --account 123456789012 --also-tag latest
  scripts/push-image.sh --registry gar --region europe-west4 --project my-proj --repo ml --dry-run
  scripts/push-image.sh --registry acr --registry-name myacr --build-arg CUDA_VERSION=12.8.1 \
      --build-arg TORCH_VERSION=2.15.0+cu128 --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
EOF
}

die_usage() {
  printf 'push-image.sh: error: %s\nTry scripts/push-image.sh --help\n' "$1" >&2
  exit 64
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
docker=${DOCKER:-docker}
registry=${HFKIT_REGISTRY:-}
repo=${HFKIT_IMAGE_REPO:-hfkit}
tag=${HFKIT_IMAGE_TAG:-}
region=""
account=${AWS_ACCOUNT_ID:-}
project=${GOOGLE_CLOUD_PROJECT:-}
image=hfkit
acr_name=${ACR_NAME:-}
create_repo=0
build=1
dry_run=0
platform=linux/amd64
build_args=()
also_tags=()

need_value() { [[ $# -ge 2 && -n "$2" ]] || die_usage "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) need_value "$@"; registry=$2; shift 2 ;;
    --repo) need_value "$@"; repo=$2; shift 2 ;;
    --tag) need_value "$@"; tag=$2; shift 2 ;;
    --also-tag) need_value "$@"; also_tags+=("$2"); shift 2 ;;
    --region) need_value "$@"; region=$2; shift 2 ;;
    --account) need_value "$@"; account=$2; shift 2 ;;
    --project) need_value "$@"; project=$2; shift 2 ;;
    --image) need_value "$@"; image=$2; shift 2 ;;
    --registry-name) need_value "$@"; acr_name=$2; shift 2 ;;
    --create-repo) create_repo=1; shift ;;
    --build-arg) need_value "$@"; [[ $2 == *=* ]] || die_usage "--build-arg wants KEY=VALUE, got '$2'"
                 build_args+=("$2"); shift 2 ;;
    --platform) need_value "$@"; platform=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done

# Prints a command (shell-quoted, prefixed "+ ") and runs it unless --dry-run.
run() {
  printf '+'; printf ' %q' "$@"; printf '\n'
  if ((dry_run == 0)); then "$@"; fi
}

# The CUDA version the image is built for: a --build-arg, else the Dockerfile's default.
cuda_version=$(sed -n 's/^ARG CUDA_VERSION=//p' "$root/Dockerfile.cuda" | head -n1)
for a in "${build_args[@]}"; do
  [[ $a == CUDA_VERSION=* ]] && cuda_version=${a#CUDA_VERSION=}
done
if [[ -z "$tag" ]]; then
  commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo dev)
  tag="$commit-cuda$cuda_version"
fi

case "$registry" in
  ecr)
    region=${region:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}
    [[ -n "$region" ]] || die_usage "ecr needs --region (or AWS_REGION)"
    if [[ -z "$account" ]]; then
      if ((dry_run)); then
        printf '+ aws sts get-caller-identity --query Account --output text\n'
        account=ACCOUNT_ID  # placeholder: the real run asks aws sts
      else
        account=$(aws sts get-caller-identity --query Account --output text)
      fi
    fi
    host="$account.dkr.ecr.$region.amazonaws.com"
    remote="$host/$repo"
    ;;
  gar)
    region=${region:-${GAR_LOCATION:-}}
    [[ -n "$region" ]] || die_usage "gar needs --region LOCATION (or GAR_LOCATION)"
    [[ -n "$project" ]] || die_usage "gar needs --project (or GOOGLE_CLOUD_PROJECT)"
    host="$region-docker.pkg.dev"
    remote="$host/$project/$repo/$image"
    ;;
  acr)
    [[ -n "$acr_name" ]] || die_usage "acr needs --registry-name (or ACR_NAME)"
    host="$acr_name.azurecr.io"
    remote="$host/$repo"
    ;;
  "") die_usage "--registry is required (ecr, gar or acr)" ;;
  *) die_usage "--registry must be ecr, gar or acr, not '$registry'" ;;
esac

local_image="hfkit:$tag"
if ((build)); then
  cmd=("$docker" build -f "$root/Dockerfile.cuda" --platform "$platform")
  for a in "${build_args[@]}"; do cmd+=(--build-arg "$a"); done
  cmd+=(-t "$local_image" "$root")
  run "${cmd[@]}"
fi

case "$registry" in
  ecr)
    if ((create_repo)); then
      printf '+ aws ecr describe-repositories --region %q --repository-names %q || aws ecr create-repository --region %q --repository-name %q\n' \
        "$region" "$repo" "$region" "$repo"
      if ((dry_run == 0)); then
        aws ecr describe-repositories --region "$region" --repository-names "$repo" >/dev/null 2>&1 \
          || aws ecr create-repository --region "$region" --repository-name "$repo" >/dev/null
      fi
    fi
    printf '+ aws ecr get-login-password --region %q | %q login --username AWS --password-stdin %q\n' "$region" "$docker" "$host"
    if ((dry_run == 0)); then
      aws ecr get-login-password --region "$region" | "$docker" login --username AWS --password-stdin "$host"
    fi
    ;;
  gar) run gcloud auth configure-docker "$host" --quiet ;;
  acr) run az acr login --name "$acr_name" ;;
esac

for t in "$tag" "${also_tags[@]}"; do
  run "$docker" tag "$local_image" "$remote:$t"
  run "$docker" push "$remote:$t"
done
printf 'push-image.sh: %s %s:%s\n' "$( ((dry_run)) && echo 'would push' || echo pushed)" "$remote" "$tag" >&2
