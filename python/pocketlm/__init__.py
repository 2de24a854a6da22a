"""pocketlm from Python, over the C API (include/pocketlm/pocketlm.h) with ctypes: docs/python.md.

    import pocketlm
    m = pocketlm.Model("models/SmolLM2-135M-Instruct.Q4_1.gguf", n_ctx=2048)
    for piece in m.generate("Once upon a time", max_tokens=32, temperature=0):
        print(piece, end="", flush=True)
    ids = m.tokenize("Hello world")          # numpy int32
    lp = m.logprobs(ids)                     # (len(ids), n_vocab) float32 log-probabilities
    print(m.perplexity(open("wiki.test.raw").read(), n_ctx=512, max_chunks=10))
"""
import ctypes
import queue
import threading

import numpy as np

from . import _capi
from ._capi import Error, check, lib

__all__ = ["Model", "Error"]


class Model:
    """A loaded GGUF model with one context (its KV cache) of n_ctx tokens (0: min(training context, 4096))."""

    def __init__(self, path, n_ctx=0, n_threads=0):
        self._model = ctypes.c_void_p()
        check(lib.plm_model_load(str(path).encode(), ctypes.byref(self._model)))
        params = lib.plm_context_default_params()
        params.n_ctx, params.n_threads = n_ctx, n_threads
        self._ctx = ctypes.c_void_p()
        try:
            check(lib.plm_context_create(self._model, ctypes.byref(params), ctypes.byref(self._ctx)))
        except Error:
            lib.plm_model_free(self._model)
            self._model = None
            raise
        self._lock = threading.Lock()  # one call at a time on the context
        self.n_vocab = lib.plm_model_n_vocab(self._model)
        self.n_ctx = lib.plm_context_n_ctx(self._ctx)
        self.n_ctx_train = lib.plm_model_n_ctx_train(self._model)
        self.bos = lib.plm_model_bos(self._model)

    def close(self):
        if getattr(self, "_ctx", None):
            lib.plm_context_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            lib.plm_model_free(self._model)
            self._model = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Tokens -------------------------------------------------------------------------------------------------
    def tokenize(self, text, add_special=True, parse_special=False):
        """The token ids of `text` (numpy int32): BOS when the model adds one (add_special)."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        n = ctypes.c_size_t()
        cap = len(data) + 8
        out = np.empty(cap, dtype=np.int32)
        st = lib.plm_tokenize(self._model, data, len(data), int(add_special), int(parse_special),
                              out.ctypes.data_as(_capi.c_int32_p), cap, ctypes.byref(n))
        if st != _capi.PLM_OK and n.value > cap:
            out = np.empty(n.value, dtype=np.int32)
            st = lib.plm_tokenize(self._model, data, len(data), int(add_special), int(parse_special),
                                  out.ctypes.data_as(_capi.c_int32_p), n.value, ctypes.byref(n))
        check(st)
        return out[: n.value]

    def token_bytes(self, token):
        """The bytes of one token (special tokens: b"")."""
        buf = ctypes.create_string_buffer(256)
        n = ctypes.c_size_t()
        st = lib.plm_token_to_piece(self._model, int(token), buf, 256, ctypes.byref(n))
        if st != _capi.PLM_OK and n.value > 256:
            buf = ctypes.create_string_buffer(n.value)
            st = lib.plm_token_to_piece(self._model, int(token), buf, n.value, ctypes.byref(n))
        check(st)
        return buf.raw[: n.value]

    def detokenize(self, tokens):
        return b"".join(self.token_bytes(t) for t in tokens).decode(errors="replace")

    # Logits -------------------------------------------------------------------------------------------------
    def _eval(self, tokens, all_logits):
        ids = np.ascontiguousarray(tokens, dtype=np.int32)
        ptr = _capi.c_float_p()
        check(lib.plm_context_eval(self._ctx, ids.ctypes.data_as(_capi.c_int32_p), ids.size, int(all_logits), ctypes.byref(ptr)))
        rows = ids.size if all_logits else 1
        # A view of the context's buffer (no copy): valid until the next call on this model.
        return np.ctypeslib.as_array(ptr, shape=(rows, self.n_vocab))

    def logits(self, tokens, reset=True, copy=True):
        """Logits of every position (len(tokens) x n_vocab float32), from an empty sequence when reset. With
        copy=False the array is a view of the library's buffer (no copy), valid until the next call."""
        with self._lock:
            if reset:
                check(lib.plm_context_reset(self._ctx))
            out = self._eval(tokens, True)
            return out.copy() if copy else out

    def logprobs(self, tokens, reset=True):
        """Log-softmax of logits(tokens): row i is the distribution of the token after tokens[:i+1]."""
        x = self.logits(tokens, reset=reset, copy=True)
        x -= x.max(axis=1, keepdims=True)
        x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
        return x

    def score(self, tokens):
        """log p(tokens[i] | tokens[:i]) for i >= 1 (numpy float64, len(tokens) - 1 values)."""
        ids = np.asarray(tokens, dtype=np.int32)
        lp = self.logprobs(ids)
        return lp[np.arange(ids.size - 1), ids[1:]].astype(np.float64)

    def perplexity(self, text, n_ctx=512, max_chunks=-1):
        """Perplexity as `pocketlm perplexity` (and llama-perplexity) computes it: chunks of n_ctx tokens, each from
        an empty cache with BOS first, scoring only the second half of each chunk. Returns (ppl, n_scored)."""
        ids = self.tokenize(text, add_special=True, parse_special=False)
        n_chunk = ids.size // n_ctx
        if max_chunks >= 0:
            n_chunk = min(n_chunk, max_chunks)
        if n_chunk < 1:
            raise Error("invalid argument", f"the text has {ids.size} tokens, fewer than one chunk of {n_ctx}")
        nll, count = 0.0, 0
        first = n_ctx // 2
        for k in range(n_chunk):
            chunk = ids[k * n_ctx:(k + 1) * n_ctx].copy()
            if self.bos >= 0:
                chunk[0] = self.bos
            lp = self.logprobs(chunk)
            pos = np.arange(first, n_ctx - 1)
            nll -= float(lp[pos, chunk[pos + 1]].astype(np.float64).sum())
            count += pos.size
        return float(np.exp(nll / count)), count

    # Generation ---------------------------------------------------------------------------------------------
    def generate(self, prompt, max_tokens=-1, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0,
                 seed=None, stop=(), chat=False):
        """Streams the generated text piece by piece (an iterator of str). Leaving the loop early cancels the
        generation. chat=True renders the prompt as a user message through the model's chat template."""
        p = lib.plm_generate_default_params()
        p.max_tokens, p.chat, p.temperature, p.top_k = max_tokens, int(chat), temperature, top_k
        p.top_p, p.min_p, p.repeat_penalty = top_p, min_p, repeat_penalty
        p.seed = 0xFFFFFFFF if seed is None else seed & 0xFFFFFFFF
        stops = [s.encode() for s in stop]
        arr = (ctypes.c_char_p * max(1, len(stops)))(*stops)
        p.stop, p.n_stop = arr, len(stops)
        q = queue.Queue(maxsize=64)
        cancel = threading.Event()
        done = object()
        result = {}

        def on_text(data, n, _):
            if cancel.is_set():
                return 1
            q.put(ctypes.string_at(data, n))
            return 0

        cb = _capi.TokenCallback(on_text)

        def worker():
            with self._lock:
                stats = _capi.Stats()
                result["status"] = lib.plm_generate(self._ctx, prompt.encode(), ctypes.byref(p), cb, None, ctypes.byref(stats))
                result["error"] = lib.plm_last_error().decode(errors="replace")
                result["stats"] = stats
            q.put(done)

        t = threading.Thread(target=worker, daemon=True)
        t.start()
        pending = b""
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                pending += item
                try:
                    text, pending = pending.decode(), b""
                except UnicodeDecodeError as e:  # a character split across tokens: wait for the rest
                    if e.start == 0 and len(pending) < 4:
                        continue
                    text, pending = pending[: e.start].decode(), pending[e.start:]
                if text:
                    yield text
            if pending:
                yield pending.decode(errors="replace")
        finally:
            cancel.set()
            while t.is_alive():  # drain so the worker never blocks on a full queue
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            t.join()
        st = result.get("status", _capi.PLM_OK)
        if st not in (_capi.PLM_OK, _capi.PLM_ERR_CANCELLED):
            raise Error(lib.plm_status_name(st).decode(), result["error"])
        self.last_stats = result.get("stats")

    def complete(self, prompt, **kw):
        """The whole generated text (generate() joined)."""
        return "".join(self.generate(prompt, **kw))
