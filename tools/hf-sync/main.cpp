// hf-sync: copy directories between local disk and S3 (or any S3-compatible store, or a mounted
// path) incrementally; list, delete and presign objects. All the work is in lib/storage.
#include <iostream>

#include "cli/cli.h"
#include "storage/storage.h"

int main(int argc, char** argv) {
  hf::cli::Tool tool("hf-sync", "Sync directories with S3, S3-compatible stores or local paths.",
                     "  hf-sync push runs/bert s3://bucket/runs/bert --delete\n"
                     "  hf-sync pull s3://bucket/runs/bert/checkpoint-500 ./ckpt --jobs 16\n"
                     "  hf-sync ls s3://bucket/runs/ --endpoint-url http://127.0.0.1:9000\n"
                     "  hf-sync rm s3://bucket/tmp/ --recursive --dry-run\n"
                     "  hf-sync presign s3://bucket/models/model.safetensors --expires-in 600");
  CLI::App& app = tool.app();
  app.require_subcommand(1);
  app.fallthrough();
  hf::storage::CommandOptions o;
  hf::storage::Options& s = o.storage;
  std::string checksum = "sha256";
  hf::cli::add_storage_options(app, s);
  app.add_flag("--no-sign-request", s.anonymous, "Send unsigned requests (public buckets)");
  app.add_option("-j,--jobs", s.jobs, "Parallel transfers (files, parts, ranges)")
      ->check(CLI::Range(1, 256))->envname("HFKIT_SYNC_JOBS");
  app.add_option("--multipart-threshold", s.multipart_threshold, "Files this big or bigger use multipart/ranged GETs")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--part-size", s.part_size, "Multipart part and download range size")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--checksum", checksum, "Upload checksum: sha256 (x-amz-checksum-sha256) or md5 (Content-MD5)")
      ->check(CLI::IsMember({"sha256", "md5"}));
  app.add_flag("--json", o.json, "Print a JSON summary (JSON lines for ls) on stdout");
  app.add_flag("-n,--dry-run", o.sync.dry_run, "Show what would change; change nothing");
  app.add_option("--include", o.sync.filter.include, "Only paths matching these globs ('*', '**', '?', [a-z])");
  app.add_option("--exclude", o.sync.filter.exclude, "Skip paths matching these globs");

  auto add_sync = [&](CLI::App* sub) {
    sub->add_flag("--delete", o.sync.delete_extra, "Delete destination files that are not in the source");
    sub->add_flag("--force", o.sync.force, "Let --delete act even when the source has no files (empties the destination)");
    sub->add_option("--manifest", o.sync.manifest_path,
                    "Manifest file ('none' = off; default: in $XDG_CACHE_HOME/hfkit/sync)");
  };
  CLI::App* push = app.add_subcommand("push", "Upload a local directory to URL");
  push->add_option("LOCAL", o.source, "Local directory")->required();
  push->add_option("URL", o.destination, "s3://bucket/prefix, file:///path or a path")->required();
  add_sync(push);
  CLI::App* pull = app.add_subcommand("pull", "Download URL into a local directory");
  pull->add_option("URL", o.source, "s3://bucket/prefix, file:///path or a path")->required();
  pull->add_option("LOCAL", o.destination, "Local directory (created if missing)")->required();
  add_sync(pull);
  CLI::App* ls = app.add_subcommand("ls", "List objects (one level, or all with --recursive)");
  ls->add_option("URL", o.source, "s3://bucket/prefix or a path")->required();
  ls->add_flag("-r,--recursive", o.recursive, "List everything below URL");
  CLI::App* rm = app.add_subcommand("rm", "Delete an object (or everything below URL with --recursive)");
  rm->add_option("URL", o.source, "s3://bucket/key or a path")->required();
  rm->add_flag("-r,--recursive", o.recursive, "Delete everything below URL");
  CLI::App* presign = app.add_subcommand("presign", "Print a presigned URL for an object");
  presign->add_option("URL", o.source, "s3://bucket/key")->required();
  presign->add_option("--expires-in", o.expires_in_s, "Validity in seconds (max 604800)");
  presign->add_option("--method", o.method, "GET (download) or PUT (upload)")->check(CLI::IsMember({"GET", "PUT"}));

  hf::cli::exit_now(tool.run(argc, argv, [&] {
    s.checksum = checksum == "md5" ? hf::storage::ChecksumAlgorithm::kMd5 : hf::storage::ChecksumAlgorithm::kSha256;
    s.progress = true;
    if (push->parsed()) return hf::storage::run_push(o, std::cout);
    if (pull->parsed()) return hf::storage::run_pull(o, std::cout);
    if (ls->parsed()) return hf::storage::run_ls(o, std::cout);
    if (rm->parsed()) return hf::storage::run_rm(o, std::cout);
    return hf::storage::run_presign(o, std::cout);
  }));
}
