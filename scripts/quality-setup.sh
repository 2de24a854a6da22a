# Sourced by the quantizer quality scripts (quant-methods-quality.sh, quant-rtn-quality.sh, quant-outliers-quality.sh): the model and
# its scoring context, the work directory, the calibration text and the F32 base every file is quantized from.
#   quality_setup NAME MODELS...   (MODELS: the values of MODEL the calling script accepts, among
#                                   stories, smollm2 and gemma)
# Reads B, SHARED, MODEL, CALIB_BYTES, T, KEEP, CTX, CHUNKS; sets EVAL, SRC, CTX, CHUNKS, W (the work directory:
# KEEP, or a temporary one removed at exit) and M (the base: stories260K itself, or the release dequantized to
# F32, made once in W). The SmolLM2 and Gemma 3 files are quantized releases (Q4_1, Q4_K_M): their base is the
# release dequantized (`pocketlm quantize REL base.gguf f32`), not the original weights.
quality_setup() {
  local name=$1; shift
  case " $* " in
    *" $MODEL "*) ;;
    *) echo "MODEL must be one of: $*" >&2; exit 2 ;;
  esac
  EVAL=$SHARED/testdata/text/tinystories-val.dev.txt
  case "$MODEL" in
    stories) SRC=$SHARED/models/stories260K.gguf; CTX=${CTX:-128}; CHUNKS=${CHUNKS:-100} ;;
    smollm2) SRC=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf; CTX=${CTX:-512}; CHUNKS=${CHUNKS:-8} ;;
    gemma) SRC=$ROOT/models/gemma-3-270m-q4_k_m.gguf; CTX=${CTX:-512}; CHUNKS=${CHUNKS:-8} ;;
  esac
  [ -f "$SRC" ] || { echo "$SRC is missing: run scripts/fetch-models.sh" >&2; exit 1; }
  if [ -n "${KEEP:-}" ]; then
    W=$KEEP; mkdir -p "$W"
  else
    W=$(mktemp -d "/tmp/plm-$name.XXXXXX")
    trap 'rm -rf "$W"' EXIT
  fi
  head -c "$CALIB_BYTES" "$SHARED/testdata/text/wiki.test.raw" > "$W/calib.txt"
  if [ "$MODEL" = stories ]; then
    M=$SRC
  else
    M=$W/base-f32.gguf
    [ -f "$M" ] || "$B" quantize "$SRC" "$M" f32 -t "$T" -q > /dev/null 2> "$W/base.log"
  fi
}

# FILE -> "mean_kld ± err | same_top %": llama-perplexity --kl-divergence of FILE against $W/base.kld (reads PEER,
# W, T). llama-perplexity now and then stops after its last chunk without the summary (seen on the loaded 2-core
# machine): up to 4 tries, each one's output kept in FILE.kld.log.
kld_score() {
  local r i
  for i in 1 2 3 4; do
    "$PEER/llama-perplexity" -m "$1" --kl-divergence-base "$W/base.kld" --kl-divergence -t "$T" > "$1.kld.log" 2>&1 < /dev/null || true
    r=$(awk '/^Mean +KLD:/ { k = $3 " ± " $5 } /^Same top p:/ { s = $4 " %" } END { if (k != "") print k " | " s }' "$1.kld.log")
    [ -n "$r" ] && break
    echo "kld_score: $1: no summary from llama-perplexity (try $i of 4)" >&2
  done
  echo "${r:- | }"
}
