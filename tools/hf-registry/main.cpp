// hf-registry: publish a trained model as an immutable version of a registry on any storage hf-sync
// speaks, and resolve REGISTRY/NAME[@VERSION] to the model directory the other tools read.
#include <iostream>

#include "cli/build_info.h"
#include "cli/cli.h"
#include "serve/serve.h"

int main(int argc, char** argv) {
  hf::cli::Tool tool("hf-registry", "Versioned model registry on a local path, file:// or s3://.",
                     "  hf-registry publish --registry s3://bucket/models --name sentiment --model run/ \\\n"
                     "      --dataset data/ --metrics eval.json\n"
                     "  hf-registry resolve s3://bucket/models/sentiment@latest   # prints a local model dir\n"
                     "  hf-predict --model \"$(hf-registry resolve models/sentiment)\" < test.jsonl");
  CLI::App& app = tool.app();
  app.require_subcommand(1);
  app.fallthrough();
  hf::serve::PublishOptions p;
  std::string ref, cache;
  hf::cli::add_storage_options(app, p.storage);
  CLI::App* publish = app.add_subcommand("publish", "Upload a model dir as REGISTRY/NAME/VERSION, then mark it latest");
  publish->add_option("--registry", p.registry, "Registry root: a path, file:///path or s3://bucket/prefix")
      ->envname("HFKIT_REGISTRY")->required();
  publish->add_option("--name", p.name, "Model name (A-Z a-z 0-9 . _ -)")->required();
  publish->add_option("--model", p.model_dir, "Trained model directory (hf-train --output-dir)")->required();
  publish->add_option("--version", p.version, "Version name (default: UTC time YYYYMMDD-HHMMSS)")
      ->check(CLI::Validator([](std::string& v) { return v.empty() ? std::string("must not be empty") : std::string(); },
                             "NAME"));
  publish->add_option("--dataset", p.dataset_dir, "hf-preprocess output whose dataset.json holds the data hashes");
  publish->add_option("--metrics", p.metrics, "hf-eval's JSON output for the manifest");
  publish->add_option("--parent", p.parent, "Base model (default: 'model' of the run's hfkit_config.yaml)");
  CLI::App* resolve = app.add_subcommand("resolve", "Print the local model directory of REGISTRY/NAME[@VERSION]");
  resolve->add_option("REF", ref, "REGISTRY/NAME[@VERSION|@latest]")->required();
  resolve->add_option("--model-cache", cache, "Where remote versions are pulled")->envname("HFKIT_MODEL_CACHE");
  p.hfkit_version = hf::cli::kHfkitVersion;
  p.git_commit = hf::cli::kGitCommit;
  hf::cli::exit_now(tool.run(argc, argv, [&] {
    if (publish->parsed()) return hf::serve::publish(p, std::cout);
    std::cout << hf::serve::resolve_model(ref, cache, p.storage) << "\n";
    return hf::Outcome::kOk;
  }));
}
