/* A C app over pocketlm's C API (include/pocketlm/pocketlm.h): loads a GGUF model, streams one chat turn
 * (greedy, through the model's chat template) to stdout, and prints the stats to stderr.
 *
 *   pocketlm_chat_example MODEL.gguf ["user message"] [MAX_TOKENS]
 *
 * Exit status 0 on success, 1 on a pocketlm error (its message on stderr), 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>

#include "pocketlm/pocketlm.h"

static int print_text(const char* text, size_t len, void* user_data) {
  (void)user_data;
  fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0; /* go on */
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s MODEL.gguf [\"user message\"] [MAX_TOKENS]\n", argv[0]);
    return 2;
  }
  const char* message = argc > 2 ? argv[2] : "Write one sentence about the sea.";
  const int max_tokens = argc > 3 ? atoi(argv[3]) : 64;

  plm_model* model = NULL;
  plm_status st = plm_model_load(argv[1], &model);
  if (st != PLM_OK) {
    fprintf(stderr, "error (%s): %s\n", plm_status_name(st), plm_last_error());
    return 1;
  }
  plm_context_params cp = plm_context_default_params();
  cp.n_ctx = 2048;
  plm_context* ctx = NULL;
  st = plm_context_create(model, &cp, &ctx);
  if (st != PLM_OK) {
    fprintf(stderr, "error (%s): %s\n", plm_status_name(st), plm_last_error());
    plm_model_free(model);
    return 1;
  }
  plm_generate_params gp = plm_generate_default_params();
  gp.chat = 1;
  gp.temperature = 0.0f; /* greedy: the same text as `pocketlm run --temp 0` on the rendered prompt */
  gp.max_tokens = max_tokens;
  plm_stats stats;
  st = plm_generate(ctx, message, &gp, print_text, NULL, &stats);
  printf("\n");
  fflush(stdout);
  if (st != PLM_OK) {
    fprintf(stderr, "error (%s): %s\n", plm_status_name(st), plm_last_error());
  } else {
    fprintf(stderr,
            "load: %.2f s | prompt: %lld tokens, %.1f t/s | generation: %lld tokens, %.2f t/s | KV cache: %.1f KiB | "
            "peak RSS: %.1f MiB | stop: %s\n",
            stats.load_seconds, (long long)stats.prompt_tokens, stats.prompt_tokens_per_second,
            (long long)stats.generated_tokens, stats.tokens_per_second, (double)stats.kv_bytes / 1024.0,
            (double)stats.peak_rss_bytes / (1024.0 * 1024.0), stats.stop_reason);
  }
  plm_context_free(ctx);
  plm_model_free(model);
  return st == PLM_OK ? 0 : 1;
}
