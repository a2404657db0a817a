"""The PyTorch reference for hf-train's updates, shared by train_test.py (BERT) and
families_test.py (the other families): full-batch steps over a tokenized split with
transformers' AutoModelForSequenceClassification, torch.optim.AdamW (fused, HF's decay groups),
the linear warmup schedule and gradient clipping, as HF's Trainer runs them."""
import os

import numpy as np


def padded_split(data_dir, split, pad_id):
    """A tokenized split as right-padded [N, T] input_ids (pad_id) and attention mask, plus labels."""
    import torch
    from safetensors.numpy import load_file
    t = load_file(os.path.join(data_dir, f"{split}.safetensors"))
    offs, ids = t["offsets"], t["input_ids"]
    n = len(offs) - 1
    width = max(int(offs[i + 1] - offs[i]) for i in range(n))
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros(n, width, dtype=torch.long)
    for i in range(n):
        row = torch.from_numpy(ids[offs[i]:offs[i + 1]].astype(np.int64))
        input_ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return input_ids, mask, torch.from_numpy(t["labels"])


def torch_loop(model_dir, data_dir, steps, lr, wd, clip, warmup):
    """The state dict after `steps` full-batch updates of the model in `model_dir` on the train split."""
    import torch
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.train()
    input_ids, mask, labels = padded_split(data_dir, "train", model.config.pad_token_id or 0)
    # HF Trainer's get_decay_parameter_names: no decay for biases and LayerNorm weights.
    norms = {f"{m}.weight" if m else "weight" for m, mod in model.named_modules()
             if isinstance(mod, torch.nn.LayerNorm)}
    no_decay_names = {n for n, _ in model.named_parameters() if "bias" in n or n in norms}
    decay = [p for name, p in model.named_parameters() if name not in no_decay_names]
    no_decay = [p for name, p in model.named_parameters() if name in no_decay_names]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, fused=True)
    sched = get_linear_schedule_with_warmup(opt, warmup, steps)
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        opt.zero_grad()
    return {k: v.detach() for k, v in model.state_dict().items()}


def compare_with_torch_loop(train, model_dir, data_dir, work, name="", tolerance=2e-6):
    """Runs hf-train (`train(out, *args, model=, data=)`) with one full batch and with 2 x accumulation
    and asserts its parameters equal torch_loop's within `tolerance`."""
    from safetensors.torch import load_file as load_torch
    steps, lr, wd, clip, warmup = 6, 2e-3, 0.1, 0.5, 2
    want = torch_loop(model_dir, data_dir, steps, lr, wd, clip, warmup)
    common = ["--max-steps", str(steps), "--learning-rate", str(lr), "--weight-decay", str(wd), "--max-grad-norm",
              str(clip), "--warmup-steps", str(warmup), "--save-strategy", "no", "--threads", "1"]
    start_w = load_torch(os.path.join(model_dir, "model.safetensors"))
    for label, extra in [("one batch", ["--per-device-train-batch-size", "64"]),
                         ("2 x accumulation", ["--per-device-train-batch-size", "24", "--gradient-accumulation-steps", "2"])]:
        out = os.path.join(work, f"vs-torch{name}-" + extra[1])
        train(out, *common, *extra, model=model_dir, data=data_dir)
        got = load_torch(os.path.join(out, "model.safetensors"))
        worst, worst_key = 0.0, ""
        for k, v in want.items():
            if k not in got:
                continue
            d = float((got[k] - v).abs().max())
            if d > worst:
                worst, worst_key = d, k
        moved = max(float((want[k] - start_w[k]).abs().max()) for k in start_w if k in want)
        assert set(got) >= {k for k in want if not k.endswith("position_ids")}, set(want) - set(got)
        print(f"  {name or 'bert'} {label}: max |param diff| vs torch loop {worst:.2e} at {worst_key} "
              f"(params moved up to {moved:.2e}; tolerance {tolerance})")
        assert worst < tolerance, (label, worst_key, worst)  # ~17x the 1.2e-7 observed: a dropped term shows
