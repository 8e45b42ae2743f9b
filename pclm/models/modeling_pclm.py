"""PCLM: a BERT-style transformer (post-LN, learned positions) written so that the same modules run either as a
plain feedforward network (BP, evaluation, pipelines) or as a predictive-coding energy graph.

Every place where a value node may sit calls `nodes(name, mu, mask)`; the default `FeedForward` returns `mu`
unchanged, an `EnergyGraph` swaps in the value node `x` and records the node's energy. Node names, per block i:
    blocks.{i}.scores  attention scores before the softmax, (B, H, T, T)   softmax-KL node ("vec.")
    blocks.{i}.attn    attention sublayer output after residual (+ LN), (B, T, C)
    blocks.{i}.ffn_pre feed-forward hidden pre-activation, (B, T, I)
    blocks.{i}.ffn     feed-forward hidden activation, (B, T, I)
    blocks.{i}.out     block output, (B, T, C)
    lm_head.head_pre   prediction head's dense pre-activation, (N, C) at the rows with a target
    lm_head.head       prediction head's activation, (N, C)
The output is clamped to the labels by the cross-entropy energy: `nodes.clamp_readout` on a training graph (the
logits are never formed; `logits` is then None), `nodes.clamp_output` on the logits otherwise. With labels, only
the rows with a target reach the head (the causal LM: on a training graph, where no logits are returned), and a
last block without value nodes computes its attention output and feed-forward at those rows only
(`PCLMModel.forward(only_rows=...)`).

Where the scores are not a value node (feedforward inference, generation, BP or PC runs without `scores`), attention
follows `config._attn_implementation` (`attn_implementation=` of `from_pretrained`): "sdpa", the default, is torch's
fused `scaled_dot_product_attention` on the same additive mask; "eager" forms the scores, as a value node needs.
Generation: `PCLMForCausalLM` keeps keys and values in a transformers `Cache` and takes positions from `position_ids`
or the attention mask, so left padding is exact; a cache is refused with value nodes, which need the whole sequence.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import GenerationConfig, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast, MaskedLMOutput

from ..pc import IGNORE_INDEX, FeedForward
from .configuration_pclm import PCLMConfig

__all__ = ["PCLMPreTrainedModel", "PCLMModel", "PCLMForMaskedLM", "PCLMForCausalLM"]

_FEEDFORWARD = FeedForward()  # stateless
# transformers renamed the cache argument and output field from `past_key_values` to `cache` during 5.x
_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def _is_node(nodes, name: str) -> bool:
    """Whether `nodes` makes `name` a value node; a graph that cannot say is assumed to."""
    if type(nodes) is FeedForward:
        return False
    select = getattr(nodes, "select", None)
    return select is None or select(name) is not None


def _norm(config: PCLMConfig, width: int) -> nn.Module:
    return nn.LayerNorm(width, eps=config.layer_norm_eps) if config.layer_norm else nn.Identity()


_ACTIVATIONS = {"gelu": F.gelu, "tanh": torch.tanh}


class PCLMAttention(nn.Module):
    def __init__(self, config: PCLMConfig) -> None:
        super().__init__()
        self.config = config  # read at each call: `config._attn_implementation` may be switched after building
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

    def forward(
        self,
        h: torch.Tensor,
        bias: torch.Tensor,
        nodes,
        name: str,
        row_mask,
        cache: Cache | None = None,
        layer: int = 0,
        rows: torch.Tensor | None = None,
        attentions: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(B, T, C), or (N, C) for the N query rows where `rows` (B, T) is true (keys and values: every row).
        `attentions`: a list the attention probabilities (B, H, T, S) are appended to (`output_attentions`).

        The scores are formed explicitly when they are a value node, when the probabilities are asked for, or with
        `config._attn_implementation == "eager"`; otherwise torch's `scaled_dot_product_attention` ("sdpa")."""
        q, k, v = self._heads(self.query(h)), self._heads(self.key(h)), self._heads(self.value(h))
        if cache is not None:  # k, v: (B, H, S, D) with the S - T earlier positions first
            k, v = cache.update(k, v, layer)
        is_node = _is_node(nodes, f"{name}.scores")
        if is_node or attentions is not None or self.config._attn_implementation == "eager":
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias  # (B, H, T, S)
            if is_node:
                scores = nodes(f"{name}.scores", scores, row_mask)
            probs = scores.softmax(-1)
            if attentions is not None:
                attentions.append(probs)
            ctx = self.dropout(probs) @ v
        else:
            # the mask must have q's dtype; fp16 cannot hold -1e9, and -inf would make fully masked rows NaN
            mask = bias if bias.dtype == q.dtype else bias.clamp(min=torch.finfo(q.dtype).min).to(q.dtype)
            ctx = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0
            )
        ctx = ctx.transpose(1, 2).reshape(h.shape)  # (B, T, C)
        return self.output(ctx if rows is None else ctx[rows])


class PCLMBlock(nn.Module):
    def __init__(self, config: PCLMConfig) -> None:
        super().__init__()
        self.attention = PCLMAttention(config)
        self.attn_norm = _norm(config, config.hidden_size)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.out_norm = _norm(config, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.act = _ACTIVATIONS[config.hidden_act]

    def forward(
        self,
        h: torch.Tensor,
        bias: torch.Tensor,
        mask: torch.Tensor,
        nodes,
        name: str,
        cache: Cache | None = None,
        layer: int = 0,
        rows: torch.Tensor | None = None,
        attentions: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(B, T, C); with `rows` (B, T), only those query rows past the attention: (N, C), row-major."""
        row_mask = mask[:, None, :]  # (B, 1, T): padded query rows carry no energy
        att = self.attention(h, bias, nodes, name, row_mask, cache, layer, rows, attentions)
        if rows is not None:
            h, mask = h[rows], mask[rows]
        a = self.attn_norm(h + self.dropout(att))
        a = nodes(f"{name}.attn", a, mask)
        f = nodes(f"{name}.ffn", self.act(nodes(f"{name}.ffn_pre", self.intermediate(a), mask)), mask)
        out = self.out_norm(a + self.dropout(self.ffn_out(f)))
        return nodes(f"{name}.out", out, mask)


# config.json's auto_map: what `Auto*.from_pretrained(path, trust_remote_code=True)` builds from the code beside it
AUTO_MAP = {
    "AutoConfig": "configuration_pclm.PCLMConfig",
    "AutoModel": "modeling_pclm.PCLMModel",
    "AutoModelForMaskedLM": "modeling_pclm.PCLMForMaskedLM",
    "AutoModelForCausalLM": "modeling_pclm.PCLMForCausalLM",
}


def model_code() -> dict[str, str]:
    """The source files a checkpoint needs to load without pclm, by file name, in one flat folder: this module,
    configuration_pclm.py and the PC core (pclm/pc/*.py; its __init__ becomes pc.py). In the package, the core is
    imported as `..pc`; the copy imports it as `.pc` (and `..pc.x` as `.x`). A copy loaded from a checkpoint
    (already flat) is copied as it is."""
    here = Path(__file__).resolve().parent
    core = here.parent / "pc"
    if not (core / "__init__.py").is_file():  # a flat copy beside a checkpoint
        return {f.name: f.read_text() for f in sorted(here.glob("*.py")) if f.name != "__init__.py"}
    files = {f.name: f.read_text() for f in (here / "configuration_pclm.py", here / "modeling_pclm.py")}
    files["modeling_pclm.py"] = re.sub(r"^from \.\.pc\.", "from .", files["modeling_pclm.py"], flags=re.M)
    files["modeling_pclm.py"] = re.sub(r"^from \.\.pc import", "from .pc import", files["modeling_pclm.py"], flags=re.M)
    for f in sorted(core.glob("*.py")):
        files["pc.py" if f.name == "__init__.py" else f.name] = f.read_text()
    for name, text in files.items():
        if re.search(r"^\s*from \.\.", text, flags=re.M):
            raise RuntimeError(f"{name} imports from outside the model code; a checkpoint could not load it")
    return files


class PCLMPreTrainedModel(PreTrainedModel):
    config_class = PCLMConfig
    base_model_prefix = "pclm"
    main_input_name = "input_ids"
    _supports_sdpa = True  # `attn_implementation`: "sdpa" (the default) or "eager", where scores are no value node

    def _init_weights(self, module: nn.Module) -> None:
        """`config.init`: "bert" draws linear and embedding weights from N(0, initializer_range) with zero biases;
        "torch" gives them PyTorch's own defaults (what `nn.Linear` / `nn.Embedding` do when built). Layer norms
        start at weight 1, bias 0 either way."""
        if isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif not isinstance(module, (nn.Linear, nn.Embedding)):
            return
        elif self.config.init == "bert":
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        else:  # nn.Linear.reset_parameters, through transformers' init functions (they skip loaded weights)
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight.shape[1]) if module.weight.shape[1] > 0 else 0
                init.uniform_(module.bias, -bound, bound)

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """transformers' save_pretrained, plus the model code and config.json's `auto_map`, so that
        `AutoModelFor*.from_pretrained(path, trust_remote_code=True)` works without pclm installed."""
        self.config.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            for name, text in model_code().items():
                (Path(save_directory) / name).write_text(text)


class PCLMModel(PCLMPreTrainedModel):
    """Embeddings and transformer blocks; returns a `BaseModelOutput` (last hidden states (B, T, C)), or a tuple."""

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

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        nodes=None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
        only_rows: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple[torch.Tensor, ...]:
        """input_ids: (B, T) new tokens; attention_mask: (B, S) over the S = cached + T tokens (1 = real);
        position_ids: (B, T), else counted from the mask (left padding starts at 0) or from the cache length.
        only_rows: (B, T) bool: return only those rows, (N, C) in row-major order. When the last block holds no
        value node after its scores, it then computes its attention output and feed-forward at those rows only:
        no other row of it reaches them.
        Returns `BaseModelOutput(last_hidden_state, hidden_states, attentions)`: hidden_states (the embeddings'
        output, then each block's, (B, T, C); the last one as `last_hidden_state`) and attentions (each block's
        probabilities, (B, H, T, S)) when asked for (default: the config's `output_*`). With `return_dict=False`
        (default: `config.return_dict`), the tuple of the fields that are set, in that order."""
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        nodes = nodes or _FEEDFORWARD
        if cache is not None and type(nodes) is not FeedForward:
            raise ValueError("a KV cache is for feedforward inference only: value nodes need the whole sequence")
        if cache is not None and any(getattr(layer, "is_compileable", False) for layer in getattr(cache, "layers", ())):
            raise ValueError(
                f"pclm keeps a growing KV cache; a fixed-size {type(cache).__name__} (cache_implementation="
                "'static' and the like) is not supported: leave cache_implementation unset or 'dynamic'"
            )
        B, T = input_ids.shape
        past = cache.get_seq_length() if cache is not None else 0
        S = past + T
        mask = torch.ones(B, S, dtype=torch.long, device=input_ids.device) if attention_mask is None else attention_mask
        if mask.shape[-1] != S:
            raise ValueError(f"attention_mask covers {mask.shape[-1]} tokens, expected {S} ({past} cached + {T} new)")
        if position_ids is not None or S > self.config.max_position_embeddings:
            # counted positions are < S, so only given ones or a long input need the (synchronising) max
            self._check_positions(position_ids, mask, past)
        if position_ids is None:
            position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
        h = self.dropout(self.embed_norm(self.word_embeddings(input_ids) + self.position_embeddings(position_ids)))
        # Additive bias (B, 1, T, S). A large finite negative (not -inf) keeps the softmax-KL energy finite.
        keep = mask[:, None, None, :].bool()
        if self.config.is_decoder:  # query i is token past + i: it sees keys 0 .. past + i
            keep = keep & torch.ones(T, S, dtype=torch.bool, device=input_ids.device).tril(diagonal=past)
        # fp16 cannot hold -1e9: its most negative finite value then (the softmax still gives those keys 0).
        bias = torch.zeros(keep.shape, dtype=h.dtype, device=h.device)
        bias = bias.masked_fill(~keep, max(-1e9, torch.finfo(h.dtype).min))
        rows = mask[:, past:]  # (B, T): the new tokens' own mask, for the value nodes' energies
        last = len(self.blocks) - 1
        name = f"blocks.{last}"
        prune = only_rows is not None and not any(
            _is_node(nodes, f"{name}.{n}") for n in ("attn", "ffn_pre", "ffn", "out")
        )
        hidden = [h] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for i, block in enumerate(self.blocks):
            keep = only_rows if prune and i == last else None
            h = block(h, bias, rows, nodes, f"blocks.{i}", cache, i, keep, attentions)
            if hidden is not None:
                hidden.append(h)
        h = h if only_rows is None or prune else h[only_rows]
        hidden = None if hidden is None else (*hidden[:-1], h)
        attentions = None if attentions is None else tuple(attentions)
        if not return_dict:
            return tuple(v for v in (h, hidden, attentions) if v is not None)
        return BaseModelOutput(last_hidden_state=h, hidden_states=hidden, attentions=attentions)

    def _check_positions(self, position_ids: torch.Tensor | None, mask: torch.Tensor, past: int) -> None:
        limit = self.config.max_position_embeddings
        last = int(position_ids.max()) if position_ids is not None else int(mask.long().sum(-1).max()) - 1
        if last >= limit:
            raise ValueError(
                f"position {last} is past the model's max_position_embeddings={limit}: it reads at "
                f"most {limit} tokens (prompt and generated tokens together)"
            )


class PCLMLMHead(nn.Module):
    """BERT's prediction head: dense + activation (`config.hidden_act`) + LN, then the decoder to the vocabulary."""

    def __init__(self, config: PCLMConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = _norm(config, config.hidden_size)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.act = _ACTIVATIONS[config.hidden_act]

    def transform(self, h: torch.Tensor, nodes=_FEEDFORWARD) -> torch.Tensor:
        """The head up to the decoder: (..., C) -> (..., C)."""
        return self.norm(nodes("lm_head.head", self.act(nodes("lm_head.head_pre", self.dense(h)))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(h))

    def loss(self, h: torch.Tensor, targets: torch.Tensor, nodes) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Clamp the output to `targets`: h (N, C) last hidden states, targets (N,). Returns (loss, logits (N, V)),
        logits None when `nodes` fuses the readout (training graphs: the logits are never formed)."""
        z = self.transform(h, nodes)
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

    def _trunk(self, *args, **kwargs) -> torch.Tensor:
        """The trunk's last hidden states as a plain tensor, whatever the config's `output_*` / `return_dict` say:
        the energy graph's path never depends on them."""
        return self.pclm(*args, **kwargs, output_attentions=False, output_hidden_states=False, return_dict=False)[0]

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head.decoder = new_embeddings

    @staticmethod
    def _check_kwargs(kwargs: dict) -> None:
        """Refuse the Hugging Face forward arguments this model does not implement, rather than ignore them."""
        for name in ("output_hidden_states", "output_attentions"):
            if kwargs.get(name):
                raise ValueError(
                    f"{name}=True is not supported: a PCLM LM returns logits (and loss) only; its `pclm` trunk "
                    "(PCLMModel) returns hidden states and attentions"
                )
        if kwargs.get("inputs_embeds") is not None:
            raise ValueError("inputs_embeds is not supported: pass input_ids")

    def _output(self, out, return_dict: bool | None):
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()


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
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        self._check_kwargs(kwargs)
        nodes = nodes or _FEEDFORWARD
        if labels is None:
            h = self._trunk(input_ids, attention_mask, nodes)  # (B, T, C)
            return self._output(MaskedLMOutput(logits=self.lm_head(h)), return_dict)
        picked = labels != IGNORE_INDEX
        h = self._trunk(input_ids, attention_mask, nodes, only_rows=picked)  # (N_masked, C)
        loss, logits = self.lm_head.loss(h, labels[picked], nodes)  # the head only at the masked rows
        return self._output(MaskedLMOutput(loss=loss, logits=logits), return_dict)


class PCLMForCausalLM(_PCLMWithHead, GenerationMixin):
    """Conditional (causal) LM: the same network with a triangular attention mask. `labels` are the input ids
    (-100 where ignored); the model shifts them, so position t predicts token t+1. With `use_cache=True` or a
    `cache` (what `generate()` passes), keys and values of earlier tokens are kept and only new tokens are fed."""

    def __init__(self, config: PCLMConfig) -> None:
        config = copy.deepcopy(config)  # never turn the caller's config into the other kind of model
        config.is_decoder = True
        super().__init__(config)
        # max_new_tokens, not max_length: a generation config with max_length makes transformers warn on every call
        # that sets max_new_tokens, and one with neither warns on every call that does not
        self.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            max_new_tokens=config.max_position_embeddings,
        )

    def _prepare_generated_length(self, generation_config, *args, **kwargs):
        """transformers' lengths, then capped at the positions the model reads: `generate()` and the text-generation
        pipeline (whose default is 256 new tokens) stop there, or at `</s>`."""
        generation_config = super()._prepare_generated_length(generation_config, *args, **kwargs)
        generation_config.max_length = min(generation_config.max_length, self.config.max_position_embeddings)
        return generation_config

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        nodes=None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        self._check_kwargs(kwargs)
        nodes = nodes or _FEEDFORWARD
        cache = cache if cache is not None else kwargs.get("past_key_values")  # the name before transformers 5.x
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if labels is None:
            h = self._trunk(input_ids, attention_mask, nodes, position_ids, cache)  # (B, T, C)
            return self._output(CausalLMOutputWithPast(logits=self.lm_head(h), **{_CACHE_FIELD: cache}), return_dict)
        # Shift the labels, not the logits: slicing the (B, T, V) logits would copy them in the forward pass
        # and zero-fill a (B, T, V) gradient in the backward. The last position gets no target.
        targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
        if nodes.fused_readout:  # no logits to return: only the rows with a target go on (as the masked LM's)
            picked = targets != IGNORE_INDEX
            h = self._trunk(input_ids, attention_mask, nodes, position_ids, cache, picked)  # (N, C)
            loss, _ = self.lm_head.loss(h, targets[picked], nodes)
            return self._output(CausalLMOutputWithPast(loss=loss, logits=None, **{_CACHE_FIELD: cache}), return_dict)
        h = self._trunk(input_ids, attention_mask, nodes, position_ids, cache)
        loss, logits = self.lm_head.loss(h.reshape(-1, h.shape[-1]), targets.reshape(-1), nodes)
        logits = None if logits is None else logits.view(*h.shape[:2], -1)
        return self._output(CausalLMOutputWithPast(loss=loss, logits=logits, **{_CACHE_FIELD: cache}), return_dict)
