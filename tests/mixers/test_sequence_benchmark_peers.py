"""Each benchmark peer of the sequence-paper mixers (the official PyTorch formulation re-run with
our weights, or the dense reference) computes the same numbers as the toolkit's mixer."""
import pytest
import torch

from benchmarks.mixer_cases.sequence_attention import CASES


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_peer_computes_the_same_function(case):
    torch.manual_seed(0)
    ours = case.build(64, 2).eval()
    peer = case.build_peer(ours)
    x = torch.randn(1, 64, 19, 13)
    with torch.no_grad():
        torch.testing.assert_close(peer(x), ours(x), rtol=1e-4, atol=1e-5)
