// hf-preprocess: labelled text (JSONL/CSV/TSV/lines) -> tokenized dataset directory, or JSONL.
#include "cli/cli.h"
#include "hub/hub.h"
#include "data/data.h"

int main(int argc, char** argv) {
  hf::data::PreprocessOptions o;
  hf::cli::Tool tool("hf-preprocess",
                     "Tokenize labelled text exactly like Hugging Face tokenizers (WordPiece, BPE, Unigram) and\n"
                     "write a tokenized dataset (one safetensors file per split + dataset.json).",
                     "  hf-preprocess --tokenizer MODEL_DIR --input reviews.jsonl --output data/\n"
                     "  hf-preprocess --tokenizer MODEL_DIR --input a.csv --text-field review --label-field stars \\\n"
                     "      --split train=0.9,test=0.1 --stratify --dedupe --max-length 128 --output data/\n"
                     "  hf-preprocess --tokenizer vocab.txt --input - --format lines --output - < texts.txt\n"
                     "  hf-preprocess --tokenizer sentence-transformers/all-MiniLM-L6-v2 --input a.jsonl --output data/\n"
                     "  hf-preprocess --config preprocess.yaml");
  auto& app = tool.app();
  tool.require(app.add_option("--tokenizer", o.tokenizer, "tokenizer.json, vocab.txt, a model directory, or org/name[@revision] from the HF cache "
                                                 "or Hub (HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE)")
                   ->envname("HFKIT_TOKENIZER"));
  app.add_option("-i,--input", o.inputs, "Input files ('-' = stdin); several are concatenated");
  tool.require(app.add_option("-o,--output", o.output, "Output dataset directory, or '-' for JSONL on stdout"));
  app.add_option("--format", o.format, "Input format")
      ->check(CLI::IsMember({"auto", "jsonl", "csv", "tsv", "lines"}));
  app.add_option("--text-field", o.text_field, "Field (JSONL) or column (CSV/TSV) holding the text");
  app.add_option("--text-pair-field", o.text_pair_field, "Field of the second text of a pair (optional)");
  app.add_option("--label-field", o.label_field,
                 "Field holding the label: a string, an integer, or a list of strings (multi-label); '' = none");
  app.add_option("--labels", o.labels, "Fixed label list in id order (default: discovered, sorted)")->delimiter(',');
  app.add_option("--split", o.split, "Split names and fractions");
  app.add_flag("--stratify", o.stratify, "Keep label proportions in every split");
  app.add_flag("--dedupe", o.dedupe, "Drop repeated texts (first occurrence wins)");
  app.add_option("--seed", o.seed, "Seed of the split shuffle");
  app.add_option("--max-length", o.max_length, "Truncate to this many tokens incl. special tokens (0 = off)");
  app.add_option("--truncation", o.truncation, "Truncation strategy for pairs")
      ->check(CLI::IsMember({"longest_first", "only_first", "only_second"}));
  app.add_option("-t,--threads", o.threads, "Worker threads (0 = the CPUs this process may use)")->envname("HFKIT_THREADS");
  app.add_option("--on-bad-record", o.on_bad_record, "What a malformed record does")
      ->check(CLI::IsMember({"error", "skip"}));
  hf::cli::exit_now(tool.run(argc, argv, [&] {
    o.tokenizer = hf::hub::resolve_model_arg(o.tokenizer);  // org/name[@rev] -> HF cache snapshot
    return hf::data::preprocess(o);
  }));
}
