#ifndef POCKETLM_H
#define POCKETLM_H
/* pocketlm's stable C API: load a GGUF model, make a context, generate with streaming.
 *
 *   plm_model* model = NULL;
 *   if (plm_model_load("model.gguf", &model) != PLM_OK) { fprintf(stderr, "%s\n", plm_last_error()); ... }
 *   plm_context_params cp = plm_context_default_params();
 *   plm_context* ctx = NULL;
 *   plm_context_create(model, &cp, &ctx);
 *   plm_generate_params gp = plm_generate_default_params();
 *   gp.chat = 1;                                   // render the prompt through the model's chat template
 *   plm_stats stats;
 *   plm_generate(ctx, "Hello!", &gp, on_text, user_data, &stats);
 *   plm_context_free(ctx); plm_model_free(model);
 *
 * Rules: every function that can fail returns a plm_status; on failure plm_last_error() gives a message
 * naming the file, field or parameter and the problem (valid on the calling thread until its next failing
 * call). A null handle or pointer is an error (PLM_ERR_INVALID_ARGUMENT), never a crash; no C++ exception
 * crosses this API. Handles are opaque. A model may be shared by several contexts, each used by one thread
 * at a time; the *_free functions accept NULL. Only additions are made to this header (PLM_API_VERSION). */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLM_API_VERSION 3 /* 2: speculative decoding (plm_context_create_speculative); 3: tokens and logits */

typedef enum plm_status {
  PLM_OK = 0,
  PLM_ERR_INVALID_ARGUMENT = 1, /* a null handle or pointer, or a parameter out of range */
  PLM_ERR_IO = 2,               /* the file or descriptor cannot be opened, read or mapped */
  PLM_ERR_FORMAT = 3,           /* not a GGUF file, or a model pocketlm cannot run (bad tensor, key, arch) */
  PLM_ERR_CONTEXT_FULL = 4,     /* the prompt does not fit the context (plm_context_params.n_ctx) */
  PLM_ERR_CANCELLED = 5,        /* the token callback returned nonzero; the text so far was delivered */
  PLM_ERR_RUNTIME = 6,          /* generation failed (e.g. the KV cache budget is exhausted) */
  PLM_ERR_INTERNAL = 7          /* a bug or out of memory: please report plm_last_error() */
} plm_status;

/* The message of the last call that failed on this thread ("" if none). */
const char* plm_last_error(void);
/* A fixed name for a status: "ok", "invalid argument", ... */
const char* plm_status_name(plm_status status);

typedef struct plm_model plm_model;
typedef struct plm_context plm_context;

/* Loads (memory-maps and validates) a GGUF model. On failure *out is set to NULL. */
plm_status plm_model_load(const char* path, plm_model** out);
/* The same from an open descriptor: `length` bytes at `offset` (0: to the end of the file), as Android's
 * AAsset_openFileDescriptor gives for an uncompressed asset. `offset` must be a multiple of 32 (GGUF's tensor
 * alignment; zipalign -p aligns to pages), else PLM_ERR_INVALID_ARGUMENT. The descriptor stays the caller's
 * and may be closed once this returns. */
plm_status plm_model_load_fd(int fd, uint64_t offset, uint64_t length, plm_model** out);
void plm_model_free(plm_model* model);

typedef struct plm_context_params {
  int32_t n_ctx;     /* context in tokens; 0: min(the model's training context, 4096) */
  int32_t n_threads; /* 0: the physical cores. Contexts asking for the same number share one pool of
                      * threads per process and take turns on it: two contexts never oversubscribe. */
} plm_context_params;
plm_context_params plm_context_default_params(void);

/* A context is one sequence (its KV cache) over a model; the model must outlive it. */
plm_status plm_context_create(const plm_model* model, const plm_context_params* params, plm_context** out);
void plm_context_free(plm_context* ctx);

typedef struct plm_generate_params {
  int32_t max_tokens;      /* < 0: until end of generation or a full context */
  int32_t chat;            /* nonzero: the prompt is a user message, rendered through the model's chat
                              template; zero: the prompt is text to continue */
  float temperature;       /* <= 0: greedy */
  int32_t top_k;           /* <= 0: off */
  float top_p;             /* >= 1: off */
  float min_p;             /* <= 0: off */
  float repeat_penalty;    /* 1: off */
  uint32_t seed;           /* 0xFFFFFFFF: random */
  const char* const* stop; /* stop strings (n_stop of them): generation ends before the first one */
  size_t n_stop;
} plm_generate_params;
plm_generate_params plm_generate_default_params(void);

/* Receives the generated text as it is produced (UTF-8 bytes, not NUL-terminated; a multi-byte character
 * may be split across calls). Return 0 to go on, anything else to cancel (plm_generate then returns
 * PLM_ERR_CANCELLED). */
typedef int (*plm_token_callback)(const char* text, size_t len, void* user_data);

typedef struct plm_stats {
  double load_seconds; /* the model's load time */
  int64_t prompt_tokens;
  double prompt_tokens_per_second;
  int64_t generated_tokens;
  double tokens_per_second; /* generation (single-token forward passes) */
  uint64_t kv_bytes;        /* KV cache bytes the context holds */
  uint64_t peak_rss_bytes;  /* the process's peak resident memory */
  const char* stop_reason;  /* "eog", "max_tokens", "stop_string", "context", "callback" */
} plm_stats;

/* Generates from `prompt` in a fresh sequence (the context's cache is cleared first), streaming through
 * `callback` (may be NULL). `params` may be NULL (the defaults); `stats` may be NULL. The stats are filled
 * on success and on PLM_ERR_CANCELLED. */
plm_status plm_generate(plm_context* ctx, const char* prompt, const plm_generate_params* params,
                        plm_token_callback callback, void* user_data, plm_stats* stats);

/* Speculative decoding (docs/speculative.md): a draft proposes tokens, the model checks them in one batched
 * pass. The output has the model's own distribution (greedy: the same text), generated in fewer passes.
 * Exactly one source: draft_model, self_type or lookup. */
typedef struct plm_draft_params {
  const char* draft_model; /* a draft model file: the same vocabulary, smaller; or NULL */
  const char* self_type;   /* a self-draft: the model requantized in memory to this type ("q4_0"); or NULL */
  int32_t self_layers;     /* with self_type: only the first N layers (0: all) */
  int32_t lookup;          /* nonzero: prompt lookup (n-grams of the prompt and the output) */
  int32_t draft_max;       /* most tokens drafted per round (default 16) */
  int32_t draft_min;       /* a shorter draft is not verified (default 0) */
  float draft_p_min;       /* a model draft stops below this top probability (default 0) */
} plm_draft_params;
plm_draft_params plm_draft_default_params(void);

/* A context whose plm_generate runs speculative decoding with the draft `draft` describes (the draft's KV
 * cache shares the context's). Errors as plm_context_create's, and PLM_ERR_IO / PLM_ERR_FORMAT for the draft
 * model, PLM_ERR_INVALID_ARGUMENT for a draft that does not fit (another vocabulary, not smaller). */
plm_status plm_context_create_speculative(const plm_model* model, const plm_context_params* params,
                                          const plm_draft_params* draft, plm_context** out);

typedef struct plm_draft_stats {
  int64_t rounds;        /* batched passes of the model */
  int64_t drafted;       /* tokens the draft proposed */
  int64_t accepted;      /* of them, kept */
  double draft_seconds;  /* time spent drafting */
  double verify_seconds; /* time spent in the model's passes */
} plm_draft_stats;
/* The speculative figures of the context's last plm_generate (zeros without a draft). */
plm_status plm_context_draft_stats(const plm_context* ctx, plm_draft_stats* out);

/* Tokens and logits (API version 3): what bindings and scoring need (python/pocketlm). */

/* The vocabulary size, the training context, the BOS token (-1: none); 0 / -1 for a NULL model. */
int32_t plm_model_n_vocab(const plm_model* model);
int32_t plm_model_n_ctx_train(const plm_model* model);
int32_t plm_model_bos(const plm_model* model);

/* Tokenizes `len` bytes of UTF-8 text. add_special: BOS (and EOS) as the model adds them; parse_special:
 * special-token text ("<|im_start|>") becomes the special token. Writes up to `capacity` ids to `out` (may be
 * NULL when capacity is 0) and the number of ids into *n_tokens; PLM_ERR_INVALID_ARGUMENT when capacity is
 * too small (*n_tokens still says how many are needed). */
plm_status plm_tokenize(const plm_model* model, const char* text, size_t len, int add_special, int parse_special,
                        int32_t* out, size_t capacity, size_t* n_tokens);
/* The bytes of one token (special tokens render empty). Writes up to `capacity` bytes (no NUL) and the
 * length into *len; PLM_ERR_INVALID_ARGUMENT for a token outside the vocabulary or a too small buffer. */
plm_status plm_token_to_piece(const plm_model* model, int32_t token, char* out, size_t capacity, size_t* len);

/* Appends `n` tokens to the context's sequence and runs the model over them. *logits points at the logits
 * (n_vocab floats; with all_logits, n x n_vocab, one row per token), owned by the context and valid until its
 * next call. PLM_ERR_CONTEXT_FULL when they do not fit, PLM_ERR_RUNTIME when the KV budget is exhausted (the
 * sequence is unchanged). */
plm_status plm_context_eval(plm_context* ctx, const int32_t* tokens, size_t n, int all_logits, const float** logits);
/* Empties the context's sequence. */
plm_status plm_context_reset(plm_context* ctx);
/* Tokens in the context's sequence, and its capacity (-1 for NULL). */
int64_t plm_context_n_past(const plm_context* ctx);
int64_t plm_context_n_ctx(const plm_context* ctx);

#ifdef __cplusplus
}
#endif
#endif /* POCKETLM_H */
