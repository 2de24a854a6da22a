"""ctypes declarations of include/pocketlm/pocketlm.h (API version 3). Loaded from, in order: $POCKETLM_LIBRARY,
the copy installed beside this file, ../../build/lib (a source checkout)."""
import ctypes
import os

_here = os.path.dirname(os.path.abspath(__file__))
_candidates = [os.environ.get("POCKETLM_LIBRARY", ""), os.path.join(_here, "libpocketlm.so"),
               os.path.join(_here, "..", "..", "build", "lib", "libpocketlm.so")]
_path = next((p for p in _candidates if p and os.path.exists(p)), None)
if _path is None:
    raise ImportError("libpocketlm.so not found: set POCKETLM_LIBRARY or reinstall after building (pip install ./python)")
lib = ctypes.CDLL(_path)

c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_float_p = ctypes.POINTER(ctypes.c_float)


class ContextParams(ctypes.Structure):
    _fields_ = [("n_ctx", ctypes.c_int32), ("n_threads", ctypes.c_int32)]


class GenerateParams(ctypes.Structure):
    _fields_ = [("max_tokens", ctypes.c_int32), ("chat", ctypes.c_int32), ("temperature", ctypes.c_float),
                ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float), ("min_p", ctypes.c_float),
                ("repeat_penalty", ctypes.c_float), ("seed", ctypes.c_uint32),
                ("stop", ctypes.POINTER(ctypes.c_char_p)), ("n_stop", ctypes.c_size_t)]


class Stats(ctypes.Structure):
    _fields_ = [("load_seconds", ctypes.c_double), ("prompt_tokens", ctypes.c_int64),
                ("prompt_tokens_per_second", ctypes.c_double), ("generated_tokens", ctypes.c_int64),
                ("tokens_per_second", ctypes.c_double), ("kv_bytes", ctypes.c_uint64), ("peak_rss_bytes", ctypes.c_uint64),
                ("stop_reason", ctypes.c_char_p)]


TokenCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t, ctypes.c_void_p)


def _decl(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


S = ctypes.c_int  # plm_status
P = ctypes.c_void_p
_decl("plm_last_error", ctypes.c_char_p)
_decl("plm_status_name", ctypes.c_char_p, S)
_decl("plm_model_load", S, ctypes.c_char_p, ctypes.POINTER(P))
_decl("plm_model_free", None, P)
_decl("plm_context_default_params", ContextParams)
_decl("plm_context_create", S, P, ctypes.POINTER(ContextParams), ctypes.POINTER(P))
_decl("plm_context_free", None, P)
_decl("plm_generate_default_params", GenerateParams)
_decl("plm_generate", S, P, ctypes.c_char_p, ctypes.POINTER(GenerateParams), TokenCallback, P, ctypes.POINTER(Stats))
_decl("plm_model_n_vocab", ctypes.c_int32, P)
_decl("plm_model_n_ctx_train", ctypes.c_int32, P)
_decl("plm_model_bos", ctypes.c_int32, P)
_decl("plm_tokenize", S, P, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, c_int32_p, ctypes.c_size_t,
      ctypes.POINTER(ctypes.c_size_t))
_decl("plm_token_to_piece", S, P, ctypes.c_int32, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t))
_decl("plm_context_eval", S, P, c_int32_p, ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(c_float_p))
_decl("plm_context_reset", S, P)
_decl("plm_context_n_past", ctypes.c_int64, P)
_decl("plm_context_n_ctx", ctypes.c_int64, P)

PLM_OK, PLM_ERR_CANCELLED = 0, 5


class Error(RuntimeError):
    """A pocketlm call failed: .status is the plm_status name, the message names the file, field or parameter."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def check(status):
    if status != PLM_OK:
        raise Error(lib.plm_status_name(status).decode(), lib.plm_last_error().decode(errors="replace"))
