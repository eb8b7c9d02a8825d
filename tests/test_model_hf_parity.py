"""Our model computes exactly what transformers' ELECTRA classes compute, given the same weights."""

import pytest
import torch
import transformers

from electra.config import ModelConfig
from electra.hf import from_hf, to_hf
from electra.model import Discriminator, ElectraModel, Generator, init_weights


def tiny_config(embedding_size: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=99,
        embedding_size=embedding_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )


def batch(seed=1, B=3, L=12, V=99):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, 8:] = 0  # padding
    mask[2, 5:] = 0
    ids[mask == 0] = 0
    types = torch.zeros(B, L, dtype=torch.long)
    types[:, 6:] = 1  # two segments
    types[mask == 0] = 0
    return ids, mask, types


def randomize(module):
    init_weights(module)
    with torch.no_grad():  # non-trivial LayerNorm and bias values
        for name, p in module.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize("embedding_size", [16, 32])  # projection present / absent
@pytest.mark.parametrize("kind", ["discriminator", "generator", "encoder"])
def test_logits_match_transformers_both_directions(kind, embedding_size):
    cfg = tiny_config(embedding_size)
    ours = {"discriminator": Discriminator, "generator": Generator, "encoder": ElectraModel}[kind](cfg)
    randomize(ours)
    ours.eval()
    hf = to_hf(ours)
    ids, mask, types = batch()
    with torch.no_grad():
        out = ours(ids, mask, types)
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        ref = ref.last_hidden_state if kind == "encoder" else ref.logits
    real = mask.bool()  # padded positions' outputs are not defined the same way (queries at pads)
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)

    back = from_hf(hf, kind)
    with torch.no_grad():
        torch.testing.assert_close(back(ids, mask, types), out, atol=0, rtol=0)


def test_generator_positions_equal_full_logits_gathered():
    cfg = tiny_config(16)
    gen = Generator(cfg).eval()
    ids, mask, types = batch()
    positions = torch.tensor([[1, 3, 3], [2, 0, 7], [4, 1, 2]])
    with torch.no_grad():
        full = gen(ids, mask, types)
        part = gen(ids, mask, types, positions=positions)
    torch.testing.assert_close(part, full.gather(1, positions[..., None].expand(-1, -1, full.shape[-1])))


def test_export_key_sets_are_exact():
    cfg = tiny_config(16)
    for cls, hf_cls in (
        (Discriminator, transformers.ElectraForPreTraining),
        (Generator, transformers.ElectraForMaskedLM),
    ):
        ours = cls(cfg)
        hf_keys = {k for k in hf_cls(to_hf(ours).config).state_dict() if not k.endswith("_ids")}
        assert set(ours.state_dict()) == hf_keys
