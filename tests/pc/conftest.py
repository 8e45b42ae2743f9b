import pytest
import torch

from pclm import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM


def tiny_lm(task: str, layer_norm: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    cfg = PCLMConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, max_position_embeddings=16, layer_norm=layer_norm
    )
    return (PCLMForMaskedLM if task == "mlm" else PCLMForCausalLM)(cfg)


def lm_batch(
    task: str,
    batch: int = 3,
    length: int = 7,
    vocab: int = 50,
    seed: int = 1,
    pad_last: int = 0,
    lengths: tuple[int, ...] | None = None,
):
    """Random sentences, right-padded with id 0: the last `pad_last` positions of the last sentence, or sentence
    i padded after `lengths[i]` tokens (variable-length sentences; `batch` is then len(lengths))."""
    g = torch.Generator().manual_seed(seed)
    batch = len(lengths) if lengths is not None else batch
    ids = torch.randint(5, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    if pad_last:
        ids[-1, -pad_last:] = 0
        mask[-1, -pad_last:] = 0
    for i, n in enumerate(lengths or ()):
        ids[i, n:] = 0
        mask[i, n:] = 0
    if task == "clm":
        labels = ids.masked_fill(mask == 0, -100)
    else:
        pick = torch.rand(batch, length, generator=g) < 0.4
        pick[:, 1] = True
        labels = torch.where(pick & (mask == 1), ids, torch.full_like(ids, -100))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.fixture(params=["mlm", "clm"])
def task(request):
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _flush_denormals():
    """PC value dynamics produce denormal floats, 10-40x slower on CPU; the scripts flush them too."""
    torch.set_flush_denormal(True)
