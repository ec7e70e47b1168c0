"""A decoder-only transformer, in the shape of nanoGPT (Karpathy, github.com/karpathy/nanoGPT).

Shapes: B = batch, T = time (sequence length <= block_size), C = n_embd, H = n_head,
V = vocab_size (the compact vocabulary's size when the trainer compacts it).

    tokens (B, T) -> token embedding + position embedding (B, T, C)
                  -> n_layer x Block: x + attn(ln(x)); x + mlp(ln(x))   (pre-norm residual)
                  -> final LayerNorm -> lm_head (weights tied to the token embedding) (B, T, V)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 128
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = False  # no bias in Linear/LayerNorm: slightly better and faster (nanoGPT)


class CausalSelfAttention(nn.Module):
    """Multi-head attention in which position t sees only positions <= t."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        # one matmul makes queries, keys and values for all heads: C -> 3C
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, H, T, C/H): each head attends over its own C/H-dim subspace
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:  # generation: keys/values of earlier positions are kept, not recomputed
            if "k" in cache:
                if T != 1:
                    raise ValueError("with a filled cache, feed one token at a time")
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        # softmax(q k^T / sqrt(C/H) + causal mask) v, fused (flash attention where available);
        # one new query against the cache sees every earlier position, so no mask is needed
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=q.size(2) == k.size(2)
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> GELU -> C."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One transformer layer: attention communicates across positions, the MLP computes per position."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),  # token id -> vector
                wpe=nn.Embedding(cfg.block_size, cfg.n_embd),  # position -> vector
                drop=nn.Dropout(cfg.dropout),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
            )
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        # weight tying (Press & Wolf 2017): the output layer reuses the input embedding
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init: each residual projection by 1/sqrt(2 * n_layer), so the
        # residual stream's variance does not grow with depth
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Parameters, counting the tied embedding once and excluding position embeddings."""
        return sum(p.numel() for p in self.parameters()) - self.transformer.wpe.weight.numel()

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: list[dict] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return logits (B, T, V) and, given targets (B, T), the mean cross-entropy in nats.

        `mask` (B, T, bool) selects the target positions that carry loss (the loader sets it
        from the shard's spans: prompts and padding carry none); the loss is the mean over them.
        `cache` (one dict per layer, from generate) holds earlier positions' keys and values.
        """
        B, T = idx.shape
        start = cache[0]["k"].size(2) if cache and "k" in cache[0] else 0
        if start + T > self.cfg.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size {self.cfg.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache[i] if cache is not None else None)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        nll = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), reduction="none")
        if mask is None:
            return logits, nll.mean()
        m = mask.view(-1).to(nll.dtype)
        return logits, (nll * m).sum() / m.sum().clamp(min=1.0)

    def configure_optimizer(self, lr: float, weight_decay: float, device_type: str) -> torch.optim.AdamW:
        """AdamW with decay on matrices only (biases, norms and embeddings' 1-d params keep none)."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=device_type == "cuda")

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        stop: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Extend idx (B, T) by up to max_new_tokens samples; temperature 0 is greedy.

        Generation stops early when every row has produced `stop` (e.g. the end-of-sample id).
        While everything fits in block_size a key/value cache makes each new token one
        position's work; beyond that the last block_size tokens are recomputed each step.
        """
        done = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
        cache = [{} for _ in self.transformer.h] if idx.size(1) + max_new_tokens <= self.cfg.block_size else None
        for step in range(max_new_tokens):
            if cache is not None:  # the whole prompt first, then only the newest token
                logits = self(idx if step == 0 else idx[:, -1:], cache=cache)[0][:, -1, :].float()
            else:
                logits = self(idx[:, -self.cfg.block_size :])[0][:, -1, :].float()
            if temperature == 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                probs = F.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat((idx, nxt), dim=1)
            if stop is not None:
                done |= nxt.squeeze(1) == stop
                if bool(done.all()):
                    break
        return idx
