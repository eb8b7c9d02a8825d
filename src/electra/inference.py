"""`electra detect` and `electra fill`: look inside a discriminator and a generator."""

from __future__ import annotations

import torch
from torch import nn

from electra.errors import ElectraError
from electra.tokenizer import WordPiece


def encode(tokenizer: WordPiece, text: str, max_length: int) -> dict[str, torch.Tensor]:
    """[CLS] text [SEP] as a batch of one, refusing texts longer than the model accepts."""
    enc = tokenizer.backend.encode(text, add_special_tokens=True)
    ids = enc.ids
    if ids[:1] != [tokenizer.cls_id]:  # a tokenizer without BERT post-processing
        ids = [tokenizer.cls_id, *ids, tokenizer.sep_id]
    if len(ids) > max_length:
        raise ElectraError(f"text has {len(ids)} tokens with [CLS]/[SEP]; the model accepts at most {max_length}")
    ids_t = torch.tensor([ids])
    return {"input_ids": ids_t, "attention_mask": torch.ones_like(ids_t), "token_type_ids": torch.zeros_like(ids_t)}


@torch.no_grad()
def replaced_probabilities(discriminator: nn.Module, tokenizer: WordPiece, text: str) -> tuple[list[str], list[float]]:
    batch = encode(tokenizer, text, discriminator.config.max_position_embeddings)
    probs = torch.sigmoid(discriminator(**batch))[0]
    return tokenizer.convert_ids_to_tokens(batch["input_ids"][0]), probs.tolist()


@torch.no_grad()
def fill_masks(generator: nn.Module, tokenizer: WordPiece, text: str, top_k: int = 5) -> list[list[dict]]:
    batch = encode(tokenizer, text, generator.config.max_position_embeddings)
    positions = (batch["input_ids"][0] == tokenizer.mask_id).nonzero().flatten()
    if len(positions) == 0:
        raise ElectraError("text contains no [MASK] token")
    logits = generator(**batch, positions=positions[None])[0]  # (n_masks, V)
    probs, ids = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)
    return [
        [{"token": tok, "prob": p} for tok, p in zip(tokenizer.convert_ids_to_tokens(i), pr.tolist(), strict=True)]
        for i, pr in zip(ids, probs, strict=True)
    ]


def filled_text(text: str, tokens: list[str]) -> str:
    """`text` with each [MASK] replaced by the given token (a word piece ## joins the word before it)."""
    parts = text.split("[MASK]")
    out = parts[0]
    for token, rest in zip(tokens, parts[1:], strict=False):
        out = (out.rstrip() + token[2:] if token.startswith("##") else out + token) + rest
    return out
