"""PCLM: a BERT-style transformer (post-LN, learned positions) written so that the same modules run either as a
plain feedforward network (BP, evaluation, pipelines) or as a predictive-coding energy graph.

Every place where a value node may sit calls `nodes(name, mu, mask)`; the default `FeedForward` returns `mu`
unchanged, an `EnergyGraph` swaps in the value node `x` and records the node's energy. Node names, per block i:
    blocks.{i}.scores  attention scores before the softmax, (B, H, T, T)   softmax-KL node ("vec.")
    blocks.{i}.attn    attention sublayer output after residual (+ LN), (B, T, C)
    blocks.{i}.ffn     feed-forward hidden activation, (B, T, I)
    blocks.{i}.out     block output, (B, T, C)
The output is clamped to the labels by the cross-entropy energy: `nodes.clamp_readout` on a training graph (the
logits are never formed; `logits` is then None), `nodes.clamp_output` on the logits otherwise.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput, MaskedLMOutput

from ..pc import IGNORE_INDEX, FeedForward
from .configuration_pclm import PCLMConfig

__all__ = ["PCLMPreTrainedModel", "PCLMModel", "PCLMForMaskedLM", "PCLMForCausalLM"]

_FEEDFORWARD = FeedForward()  # stateless


def _norm(config: PCLMConfig, width: int) -> nn.Module:
    return nn.LayerNorm(width, eps=config.layer_norm_eps) if config.layer_norm else nn.Identity()


class PCLMAttention(nn.Module):
    def __init__(self, config: PCLMConfig) -> None:
        super().__init__()
        self.n_head = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        # No key bias: it adds the same q.b to every score of a row, so softmax removes it and its gradient is
        # zero up to float noise, which AdamW would turn into full-size random steps.
        self.key = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, h: torch.Tensor) -> torch.Tensor:
        B, T, _ = h.shape
        return h.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(self, h: torch.Tensor, bias: torch.Tensor, nodes, name: str, row_mask) -> torch.Tensor:
        q, k, v = self._heads(self.query(h)), self._heads(self.key(h)), self._heads(self.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias  # (B, H, T, T)
        scores = nodes(f"{name}.scores", scores, row_mask)
        probs = self.dropout(scores.softmax(-1))
        ctx = (probs @ v).transpose(1, 2).reshape(h.shape)  # (B, T, C)
        return self.output(ctx)


class PCLMBlock(nn.Module):
    def __init__(self, config: PCLMConfig) -> None:
        super().__init__()
        self.attention = PCLMAttention(config)
        self.attn_norm = _norm(config, config.hidden_size)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.out_norm = _norm(config, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor, nodes, name: str) -> torch.Tensor:
        row_mask = mask[:, None, :]  # (B, 1, T): padded query rows carry no energy
        a = self.attn_norm(h + self.dropout(self.attention(h, bias, nodes, name, row_mask)))
        a = nodes(f"{name}.attn", a, mask)
        f = nodes(f"{name}.ffn", F.gelu(self.intermediate(a)), mask)
        out = self.out_norm(a + self.dropout(self.ffn_out(f)))
        return nodes(f"{name}.out", out, mask)


class PCLMPreTrainedModel(PreTrainedModel):
    config_class = PCLMConfig
    base_model_prefix = "pclm"
    main_input_name = "input_ids"


class PCLMModel(PCLMPreTrainedModel):
    """Embeddings and transformer blocks; returns the last hidden states (B, T, C)."""

    def __init__(self, config: PCLMConfig) -> None:
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.embed_norm = _norm(config, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.blocks = nn.ModuleList(PCLMBlock(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.word_embeddings = value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, nodes=None) -> torch.Tensor:
        nodes = nodes or _FEEDFORWARD
        B, T = input_ids.shape
        if T > self.config.max_position_embeddings:
            raise ValueError(f"input of {T} tokens is longer than max_position_embeddings={self.config.max_position_embeddings}")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        positions = torch.arange(T, device=input_ids.device)
        h = self.dropout(self.embed_norm(self.word_embeddings(input_ids) + self.position_embeddings(positions)))
        # Additive bias (B, 1, T, T). A large finite negative (not -inf) keeps the softmax-KL energy finite.
        keep = mask[:, None, None, :].bool()
        if self.config.is_decoder:
            keep = keep & torch.ones(T, T, dtype=torch.bool, device=input_ids.device).tril()
        bias = torch.zeros(keep.shape, dtype=h.dtype, device=h.device).masked_fill(~keep, -1e9)
        for i, block in enumerate(self.blocks):
            h = block(h, bias, mask, nodes, f"blocks.{i}")
        return h


class PCLMLMHead(nn.Module):
    """BERT's prediction head: dense + GELU + LN, then the decoder to the vocabulary."""

    def __init__(self, config: PCLMConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = _norm(config, config.hidden_size)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def transform(self, h: torch.Tensor) -> torch.Tensor:
        """The head up to the decoder: (..., C) -> (..., C)."""
        return self.norm(F.gelu(self.dense(h)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(h))

    def loss(self, h: torch.Tensor, targets: torch.Tensor, nodes) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Clamp the output to `targets`: h (N, C) last hidden states, targets (N,). Returns (loss, logits (N, V)),
        logits None when `nodes` fuses the readout (training graphs: the logits are never formed)."""
        z = self.transform(h)
        if nodes.fused_readout:
            return nodes.clamp_readout(z, self.decoder.weight, self.decoder.bias, targets), None
        logits = self.decoder(z)
        return nodes.clamp_output(logits, targets), logits


class _PCLMWithHead(PCLMPreTrainedModel):
    def __init__(self, config: PCLMConfig) -> None:
        super().__init__(config)
        self.pclm = PCLMModel(config)
        self.lm_head = PCLMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head.decoder = new_embeddings


class PCLMForMaskedLM(_PCLMWithHead):
    """Masked LM. With `labels`, logits are computed only at the masked positions (labels != -100):
    `logits` is then (N_masked, V) in row-major order of those positions (None on a training graph). Without
    labels, (B, T, V)."""

    def __init__(self, config: PCLMConfig) -> None:
        config = copy.deepcopy(config)  # never turn the caller's config into the other kind of model
        config.is_decoder = False
        super().__init__(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        nodes=None,
        **kwargs,
    ) -> MaskedLMOutput:
        nodes = nodes or _FEEDFORWARD
        h = self.pclm(input_ids, attention_mask, nodes)  # (B, T, C)
        if labels is None:
            return MaskedLMOutput(logits=self.lm_head(h))
        picked = labels != IGNORE_INDEX
        loss, logits = self.lm_head.loss(h[picked], labels[picked], nodes)  # the head only at the masked rows
        return MaskedLMOutput(loss=loss, logits=logits)


class PCLMForCausalLM(_PCLMWithHead, GenerationMixin):
    """Conditional (causal) LM: the same network with a triangular attention mask. `labels` are the input ids
    (-100 where ignored); the model shifts them, so position t predicts token t+1."""

    def __init__(self, config: PCLMConfig) -> None:
        config = copy.deepcopy(config)  # never turn the caller's config into the other kind of model
        config.is_decoder = True
        super().__init__(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        nodes=None,
        **kwargs,
    ) -> CausalLMOutput:
        nodes = nodes or _FEEDFORWARD
        h = self.pclm(input_ids, attention_mask, nodes)  # (B, T, C)
        if labels is None:
            return CausalLMOutput(logits=self.lm_head(h))
        # Shift the labels, not the logits: slicing the (B, T, V) logits would copy them in the forward pass
        # and zero-fill a (B, T, V) gradient in the backward. The last position gets no target.
        targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
        loss, logits = self.lm_head.loss(h.reshape(-1, h.shape[-1]), targets.reshape(-1), nodes)
        return CausalLMOutput(loss=loss, logits=None if logits is None else logits.view(*h.shape[:2], -1))
