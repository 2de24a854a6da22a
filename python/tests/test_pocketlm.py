"""The Python binding over the C API (run by ctest: PythonBinding). Models come from POCKETLM_TEST_MODEL
(stories260K) and POCKETLM_CLI (the `pocketlm` binary, to compare with)."""
import os
import subprocess

import numpy as np
import pytest

import pocketlm

MODEL = os.environ.get("POCKETLM_TEST_MODEL", "")
CLI = os.environ.get("POCKETLM_CLI", "")
pytestmark = pytest.mark.skipif(not os.path.exists(MODEL), reason="POCKETLM_TEST_MODEL is not set or missing")


@pytest.fixture(scope="module")
def model():
    with pocketlm.Model(MODEL, n_ctx=256, n_threads=2) as m:
        yield m


def test_tokenize_roundtrip(model):
    ids = model.tokenize("Once upon a time")
    assert ids.dtype == np.int32 and ids.size > 1
    assert ids[0] == model.bos
    assert model.detokenize(ids[1:]).strip() == "Once upon a time"
    assert model.tokenize("", add_special=False).size == 0


def test_generate_streams_and_matches_cli(model):
    pieces = list(model.generate("Once upon a time", max_tokens=20, temperature=0))
    assert len(pieces) > 5
    text = "".join(pieces)
    if CLI:
        out = subprocess.run([CLI, "run", "-m", MODEL, "-p", "Once upon a time", "-n", "20", "--temp", "0", "-c", "256",
                              "--no-display-prompt"], capture_output=True, text=True, check=True).stdout
        assert text == out.rstrip("\n")
    assert model.last_stats.generated_tokens == 20


def test_generate_early_exit_cancels(model):
    it = model.generate("Once upon a time", max_tokens=200, temperature=0)
    first = next(it)
    it.close()  # leaving the loop cancels
    assert first
    assert model.complete("Once", max_tokens=3, temperature=0)  # the context is usable again


def test_logits_and_logprobs(model):
    ids = model.tokenize("Once upon a time there was a girl")
    lg = model.logits(ids)
    assert lg.shape == (ids.size, model.n_vocab) and lg.dtype == np.float32
    view = model.logits(ids, copy=False)  # a view of the library's buffer
    assert not view.flags.owndata and np.array_equal(view, lg)
    lp = model.logprobs(ids)
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-4)
    # Greedy next token from the logits equals what generate() produces.
    nxt = int(np.argmax(lg[-1]))
    text = model.complete("Once upon a time there was a girl", max_tokens=1, temperature=0)
    assert text == model.token_bytes(nxt).decode()
    s = model.score(ids)
    assert s.shape == (ids.size - 1,) and (s <= 0).all()


def test_perplexity_matches_cli(model, tmp_path):
    text = ("Once upon a time there was a little girl named Lily. She loved to play outside in the sun. " * 40)
    f = tmp_path / "t.txt"
    f.write_text(text)
    ppl, n = model.perplexity(text, n_ctx=128, max_chunks=3)
    assert n == 3 * (128 - 1 - 64) and 1.0 < ppl < 100
    if CLI:
        out = subprocess.run([CLI, "perplexity", "-m", MODEL, "-f", str(f), "-c", "128", "--chunks", "3"],
                             capture_output=True, text=True, check=True)
        import re
        m = re.search(r"PPL = ([0-9.]+)", out.stdout + out.stderr)
        assert m, out.stdout + out.stderr
        assert abs(float(m.group(1)) - ppl) / ppl < 1e-3


def test_errors_are_exceptions():
    with pytest.raises(pocketlm.Error) as e:
        pocketlm.Model("/no/such/model.gguf")
    assert e.value.status == "i/o error" or "no/such" in str(e.value)
