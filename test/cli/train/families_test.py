"""hf-train and hf-predict on the non-BERT families, end to end on the real binaries: for DistilBERT,
RoBERTa, XLM-RoBERTa, ELECTRA, DeBERTa-v3 and ModernBERT, a tiny random model built by transformers
and a tokenizer trained here with HF `tokenizers` (WordPiece for DistilBERT/ELECTRA, byte-level BPE for
the RoBERTas and ModernBERT, Unigram + Metaspace for DeBERTa) saved as tokenizer.json in the model
directory. hf-train's updates equal a PyTorch loop over the transformers model; per family, SIGKILL
twice (seeded plan) + --resume auto ends byte-identical to an uninterrupted run; hf-predict on each
trained directory answers as transformers does on the same ids."""
import json
import os
import shutil
import signal
import tempfile

from hfkit_testlib import AMAZON, TINY_YAML, complete_checkpoints, main, run, same_training, tool, wait_for
from torch_loop import compare_with_torch_loop

TRAIN = tool("hf-train")
PRE = tool("hf-preprocess")
PREDICT = tool("hf-predict")
WORK = tempfile.mkdtemp(prefix="hfkit-families-test-")
FAMILIES = ["distilbert", "roberta", "xlm-roberta", "electra", "deberta-v2", "modernbert"]
LABELS = {0: "negative", 1: "positive"}
RESUME_ARGS = ["--config", TINY_YAML, "--threads", "1", "--max-steps", "30", "--save-steps", "5",
               "--eval-steps", "10", "--logging-steps", "5", "--save-total-limit", "3"]


def texts():
    with open(AMAZON, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def train_tokenizer(family, out):
    """tokenizer.json: WordPiece with BERT's pipeline, byte-level BPE with RoBERTa's, or Unigram with
    DeBERTa-v3's (NFKC standing in for its sentencepiece Precompiled charsmap, which needs a
    sentencepiece model: golden.tokenizer.precompiled covers that normalizer)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    def byte_level_bpe(special_tokens):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(texts(), trainers.BpeTrainer(vocab_size=400, special_tokens=special_tokens,
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        return tok

    if family == "deberta-v2":
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
        tok.decoder = decoders.Metaspace(prepend_scheme="always")
        trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"],
                                          unk_token="[UNK]")
        tok.train_from_iterator(texts(), trainer)
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                           special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    elif family in ("roberta", "xlm-roberta"):
        tok = byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    elif family == "modernbert":  # ModernBERT's own tokenizer: byte-level BPE, [CLS] text [SEP]
        tok = byte_level_bpe(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    else:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                                            "[MASK]"])
        tok.train_from_iterator(texts(), trainer)
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    return tok.get_vocab_size()


def make_model(family, out, dropout, seed=0):
    """A tiny random <family>ForSequenceClassification with its tokenizer, labels negative/positive."""
    import torch
    import transformers as tr
    vocab = train_tokenizer(family, out)
    common = dict(vocab_size=vocab, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    p = 0.1 if dropout else 0.0
    bertlike = dict(common, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                    hidden_dropout_prob=p, attention_probs_dropout_prob=p)
    if family == "distilbert":
        cfg = tr.DistilBertConfig(**common, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=128,
                                  dropout=p, attention_dropout=p, seq_classif_dropout=p)
    elif family == "roberta":
        cfg = tr.RobertaConfig(**bertlike, max_position_embeddings=130, type_vocab_size=1, pad_token_id=1)
    elif family == "modernbert":
        # Every 2nd layer global, the others a window of +-8 tokens (the texts run to 64).
        cfg = tr.ModernBertConfig(**common, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                  intermediate_size=40, max_position_embeddings=128, global_attn_every_n_layers=2,
                                  local_attention=16, pad_token_id=0, cls_token_id=2, bos_token_id=2,
                                  sep_token_id=3, eos_token_id=3, attention_dropout=p, embedding_dropout=p,
                                  mlp_dropout=p, classifier_dropout=p)
    elif family == "xlm-roberta":
        cfg = tr.XLMRobertaConfig(**bertlike, max_position_embeddings=130, type_vocab_size=1, pad_token_id=1)
    elif family == "deberta-v2":  # DeBERTa-v3's options, 16 buckets: the 64-token inputs reach the log ones
        cfg = tr.DebertaV2Config(**bertlike, max_position_embeddings=128, relative_attention=True,
                                 pos_att_type=["p2c", "c2p"], position_buckets=16, norm_rel_ebd="layer_norm",
                                 share_att_key=True, position_biased_input=False, type_vocab_size=0, pad_token_id=0,
                                 pooler_dropout=p)
    else:
        cfg = tr.ElectraConfig(**bertlike, embedding_size=16, max_position_embeddings=128)
    torch.manual_seed(seed)
    tr.AutoModelForSequenceClassification.from_config(cfg).save_pretrained(out)
    return out


def model_dir(family, dropout=False):
    return os.path.join(WORK, f"{family}-{'drop' if dropout else 'nodrop'}")


def data_dir(family, small=False):
    return os.path.join(WORK, f"data-{family}{'-small' if small else ''}")


def setup():
    small_jsonl = os.path.join(WORK, "small.jsonl")
    with open(AMAZON, encoding="utf-8") as f, open(small_jsonl, "w", encoding="utf-8") as out:
        out.writelines(f.readlines()[:48])
    for i, family in enumerate(FAMILIES):
        make_model(family, model_dir(family), dropout=False, seed=i)
        make_model(family, model_dir(family, dropout=True), dropout=True, seed=10 + i)
        run([PRE, "--tokenizer", model_dir(family), "--input", small_jsonl, "--output", data_dir(family, True),
             "--split", "train=1", "-q"], check=0)
        run([PRE, "--tokenizer", model_dir(family), "--input", AMAZON, "--output", data_dir(family), "--stratify",
             "--seed", "3", "--max-length", "64", "-q"], check=0)


def train(out, *args, model, data, check=0):
    return run([TRAIN, "--model", model, "--data", data, "--output-dir", out, *args], check=check)


def test_updates_equal_a_pytorch_loop():
    for family in FAMILIES:
        compare_with_torch_loop(train, model_dir(family), data_dir(family, True), WORK, name=f"-{family}")


def test_sigkill_and_resume_is_byte_identical_for_every_family():
    """Per family: killed twice, each time after a checkpoint of its own, at moments drawn from a
    seeded plan (different per family); --resume auto must end with the uninterrupted run's model
    and losses, byte for byte."""
    import random
    import subprocess
    plan = random.Random(11)
    for family in FAMILIES:
        model, data = model_dir(family, dropout=True), data_dir(family)
        ref = os.path.join(WORK, f"resume-ref-{family}")
        train(ref, *RESUME_ARGS, model=model, data=data)
        out = os.path.join(WORK, f"resume-killed-{family}")
        resumed = []
        for kill_after in sorted(plan.sample(range(5, 30, 5), 2)):
            proc = subprocess.Popen([TRAIN, "--model", model, "--data", data, "--output-dir", out, *RESUME_ARGS,
                                     "--resume", "auto"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert wait_for(lambda: kill_after in complete_checkpoints(out), proc, timeout=300), \
                (family, kill_after, proc.communicate()[1][-2000:])
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate()
            resumed.append(complete_checkpoints(out)[-1])
            assert proc.returncode == -signal.SIGKILL, err[-2000:]
        p = train(out, *RESUME_ARGS, "--resume", "auto", model=model, data=data)
        assert f"resuming from {out}/checkpoint-{resumed[-1]}" in p.stderr, p.stderr
        print(f"  {family}: killed after checkpoints {resumed}, resumed to the end")
        same_training(out, ref)


def test_trained_directory_loads_in_transformers_and_hf_predict_agrees():
    import torch
    import transformers as tr
    from tokenizers import Tokenizer
    sample = ["Great phone, works well.", "The battery died after two days and support never answered.",
              "ok"]
    for family in FAMILIES:
        out = os.path.join(WORK, f"trained-{family}")
        train(out, "--config", TINY_YAML, "--max-steps", "10", "--save-strategy", "no", "--eval-strategy", "no",
              model=model_dir(family, dropout=True), data=data_dir(family))
        model, info = tr.AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), (family, info)
        model.eval()
        tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        p = run([PREDICT, "--model", out], input="".join(json.dumps({"text": t}) + "\n" for t in sample), check=0)
        preds = [json.loads(line) for line in p.stdout.splitlines()]
        assert len(preds) == len(sample), p.stdout
        worst = 0.0
        for text, pred in zip(sample, preds):
            ids = torch.tensor([tok.encode(text).ids])
            with torch.no_grad():
                probs = model(input_ids=ids).logits.softmax(-1)[0]
            want = int(probs.argmax())
            assert pred["prediction"] == LABELS[want], (family, text, pred, probs)
            worst = max(worst, abs(pred["score"] - float(probs[want])))
        print(f"  {family}: hf-predict labels = transformers', max |score diff| {worst:.2e}")
        assert worst < 1e-5, (family, worst)


if __name__ == "__main__":
    try:
        setup()
        main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
