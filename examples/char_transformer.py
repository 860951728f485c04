#!/usr/bin/python3
"""char_transformer.py - a small character-level transformer trained on CPU
with PyTorch, logging to trainscope what one watches in a real run.

    trainscope collect --store runs.db &
    /usr/bin/python3 examples/char_transformer.py --steps 600 --name chars-1
    trainscope show runs.db chars-1

Trains a 2-layer, 4-head, 32-wide decoder (about 30k parameters) on a text
shipped in examples/ (default examples/tiny.txt), next-character prediction,
AdamW with a linear warmup then cosine decay of the learning rate. Sized for
Debian's python3-torch, whose matrix products go through the reference BLAS
(about 2 GFLOP/s): 600 steps take about 20 s of one core.

Logged every step (one run.log call):
  train/loss              cross-entropy of the batch, nats per character
  lr                      the learning rate used for the step (schedule below)
  grad_norm               global L2 norm of the gradient, before clipping
  grad_norm/<layer>       L2 norm of the gradient of each layer's parameters
  update_ratio/<layer>    ||w_after - w_before|| / ||w_before|| for the step
  tokens_per_s            characters trained on per second of wall time
Every --eval-every steps and at the end: val/loss (held-out 10% of the text)
and an "eval" event; at the end a "checkpoint" event (the state is saved
when --checkpoint-dir is given).

Schedule (what tests/test_torch_example.py checks): with base = --lr,
floor = base * --min-lr-frac, W = --warmup, S = --steps, for step s:
  s < W:  base * (s + 1) / W
  else:   floor + 0.5 * (base - floor) * (1 + cos(pi * (s - W) / max(1, S - W)))
"""
import argparse
import math
import os
import sys
import time

try:
    import trainscope
except ImportError:
    # Run from a checkout without installing: the package is in ../python.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import trainscope

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def lr_at(step, base, floor, warmup, steps):
    """Warmup then cosine decay (documented above; the test recomputes it)."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * t))


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then an MLP."""

    def __init__(self, d, heads, ctx):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)))

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class CharTransformer(nn.Module):
    def __init__(self, vocab, d, heads, layers, ctx):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads, ctx) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


def layer_groups(model):
    """{layer name: [parameters]}: a layer is a module owning parameters,
    e.g. "blocks.0.qkv" (weight and bias together)."""
    groups = {}
    for name, p in model.named_parameters():
        groups.setdefault(name.rsplit(".", 1)[0], []).append(p)
    return groups


def group_norms(tensors_by_layer):
    """L2 norm per layer, computed in one stack so there is one sync."""
    names = list(tensors_by_layer)
    norms = torch.stack([torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in ts]))
                         for ts in tensors_by_layer.values()])
    return names, norms


def batches(data, batch, ctx, gen):
    while True:
        ix = torch.randint(len(data) - ctx - 1, (batch,), generator=gen)
        x = torch.stack([data[i:i + ctx] for i in ix.tolist()])
        y = torch.stack([data[i + 1:i + ctx + 1] for i in ix.tolist()])
        yield x, y


@torch.no_grad()
def evaluate(model, data, batch, ctx, n_batches=8):
    model.eval()
    gen = torch.Generator().manual_seed(1234)   # the same held-out batches every time
    it = batches(data, batch, ctx, gen)
    total = 0.0
    for _ in range(n_batches):
        x, y = next(it)
        total += F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    model.train()
    return total / n_batches


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--name", default=None, help="run name (default: char-transformer-<time>)")
    p.add_argument("--project", default=None)
    p.add_argument("--endpoint", default=None,
                   help="collector ingest endpoint (default $TRAINSCOPE_ENDPOINT or tcp://127.0.0.1:5557)")
    p.add_argument("--text", default=os.path.join(HERE, "tiny.txt"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ctx", type=int, default=32)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--min-lr-frac", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--checkpoint-dir", default=None, help="save the final state there")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: Debian's torch uses the reference BLAS, which does not thread)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.steps < 1 or a.warmup < 1 or a.eval_every < 1 or a.d_model % a.heads:
        p.error("--steps, --warmup and --eval-every must be >= 1, --d-model a multiple of --heads")
    return a


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with open(a.text, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    split = int(len(data) * 0.9)
    train, val = data[:split], data[split:]
    if len(val) <= a.ctx + 1:
        sys.exit(f"{a.text}: too short for --ctx {a.ctx}")

    model = CharTransformer(len(chars), a.d_model, a.heads, a.layers, a.ctx)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    groups = layer_groups(model)
    floor = a.lr * a.min_lr_frac
    hyper = {k: v for k, v in vars(a).items() if k not in ("name", "project", "endpoint")}
    config = dict(hyper, vocab=len(chars), params=sum(p.numel() for p in model.parameters()),
                  text_chars=len(text), torch=torch.__version__, min_lr=floor)

    with trainscope.init(a.endpoint, a.name or f"char-transformer-{time.strftime('%Y%m%d-%H%M%S')}",
                         project=a.project, config=config) as run:
        print(f"run {run.name}: {config['params']} parameters, vocab {len(chars)}, "
              f"{len(train)} training characters, {a.steps} steps", flush=True)
        it = batches(train, a.batch, a.ctx, torch.Generator().manual_seed(a.seed))
        for step in range(a.steps):
            t0 = time.perf_counter()
            lr = lr_at(step, a.lr, floor, a.warmup, a.steps)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = next(it)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()

            names, gnorms = group_norms({k: [p.grad for p in ps] for k, ps in groups.items()})
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            before = {k: [p.detach().clone() for p in ps] for k, ps in groups.items()}
            opt.step()
            _, wnorms = group_norms(before)
            _, dnorms = group_norms({k: [p.detach() - b for p, b in zip(groups[k], before[k])]
                                     for k in groups})
            ratios = (dnorms / wnorms.clamp_min(1e-12)).tolist()
            gnorms = gnorms.tolist()
            dt = time.perf_counter() - t0

            metrics = {"train/loss": loss, "lr": lr, "grad_norm": gnorm,
                       "tokens_per_s": a.batch * a.ctx / dt}
            for n, g, r in zip(names, gnorms, ratios):
                metrics["grad_norm/" + n] = g
                metrics["update_ratio/" + n] = r
            run.log(metrics, step=step)

            last = step == a.steps - 1
            if (step + 1) % a.eval_every == 0 or last:
                vl = evaluate(model, val, a.batch, a.ctx)
                run.log({"val/loss": vl}, step=step)
                run.event("eval", f"val loss {vl:.4f} after {step + 1} steps", step=step)
                print(f"step {step + 1:5d}  train {loss.item():.4f}  val {vl:.4f}  lr {lr:.2e}  "
                      f"{metrics['tokens_per_s']:.0f} tok/s", flush=True)
        text = "final state not saved (no --checkpoint-dir)"
        if a.checkpoint_dir:
            os.makedirs(a.checkpoint_dir, exist_ok=True)
            path = os.path.join(a.checkpoint_dir, f"{run.name.replace('/', '_')}-{a.steps}.pt")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": a.steps,
                        "chars": chars}, path)
            text = f"saved {path}"
        run.event("checkpoint", text, step=a.steps - 1)
        st = run.stats()
        print(f"logged {st['logged']} samples, dropped {st['dropped']}", flush=True)


if __name__ == "__main__":
    main()
