"""Electric's NCE logit and loss against a hand computation on fixed tensors."""

import math

import torch

from electra.electric import nce_logits, nce_loss, two_tower_states


def test_nce_logit_and_loss_by_hand() -> None:
    scores = torch.tensor([[0.5, -1.0]])
    cloze = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]], requires_grad=True)
    ids = torch.tensor([[1, 0]])
    logits = nce_logits(scores, cloze, ids, mask_prob=0.2)
    # log q: position 0 uniform -> log 1/2; position 1 -> log 3/4; noise rate log(0.2/0.8) = log 1/4
    want = torch.tensor([[0.5 + math.log(0.5) + math.log(0.25), -1.0 + math.log(0.75) + math.log(0.25)]])
    assert torch.allclose(logits, want, atol=1e-6)
    assert not logits.requires_grad  # the cloze term is a stop-gradient
    sampled = torch.tensor([[1, 0]])
    mask = torch.tensor([[1, 1]])
    sig = [1 / (1 + math.exp(-v)) for v in want[0].tolist()]
    hand = (-math.log(sig[0]) - math.log(1 - sig[1])) / 2
    assert abs(nce_loss(logits, sampled, mask).item() - hand) < 1e-5


def test_two_tower_states_shift_each_tower_away_from_the_token() -> None:
    ltr = torch.tensor([[[1.0], [2.0], [3.0]]])
    rtl = torch.tensor([[[10.0], [20.0], [30.0]]])
    out = two_tower_states(ltr, rtl)
    # official roll(ltr, -1) = concat(ltr[:, -1:], ltr[:, :-1]); roll(rtl, 1) = concat(rtl[:, 1:], rtl[:, :1])
    assert out[0].tolist() == [[3.0, 20.0], [1.0, 30.0], [2.0, 10.0]]
