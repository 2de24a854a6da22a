#include "server/chat_page.h"

namespace pocketlm::server {

namespace {
// Kept small and dependency-free: plain DOM, fetch() and a stream reader over the SSE body.
constexpr char kPage[] = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pocketlm chat</title>
<style>
  :root { --bg:#f6f7f9; --fg:#1d232b; --muted:#6b7480; --me:#dbe9ff; --bot:#fff; --accent:#2f6fdb; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--fg);
         display:flex; flex-direction:column; height:100vh; }
  header { padding:10px 16px; border-bottom:1px solid #dde1e6; background:#fff; display:flex; gap:12px; align-items:baseline; }
  header h1 { font-size:16px; margin:0; }
  #model, #speed { color:var(--muted); font-size:13px; }
  #speed { margin-left:auto; font-variant-numeric: tabular-nums; }
  #log { flex:1; overflow-y:auto; padding:16px; display:flex; flex-direction:column; gap:10px; }
  .msg { max-width:80%; padding:8px 12px; border-radius:10px; white-space:pre-wrap; word-wrap:break-word; }
  .user { align-self:flex-end; background:var(--me); }
  .assistant { align-self:flex-start; background:var(--bot); border:1px solid #e3e6ea; }
  .error { align-self:center; color:#b3261e; }
  form { display:flex; gap:8px; padding:12px 16px; background:#fff; border-top:1px solid #dde1e6; }
  textarea { flex:1; resize:none; height:44px; padding:10px; font:inherit; border:1px solid #cfd5dc; border-radius:8px; }
  button { padding:0 18px; border:0; border-radius:8px; background:var(--accent); color:#fff; font:inherit; cursor:pointer; }
  button:disabled { opacity:.5; cursor:default; }
  label { color:var(--muted); font-size:13px; display:flex; align-items:center; gap:4px; }
  input[type=number] { width:60px; }
</style>
</head>
<body>
<header><h1>pocketlm</h1><span id="model"></span><span id="speed"></span></header>
<div id="log"></div>
<form id="form">
  <textarea id="input" placeholder="Message (Enter to send, Shift+Enter for a new line)" autofocus></textarea>
  <label>temp <input id="temp" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  <label>max <input id="max" type="number" min="1" step="16" value="256"></label>
  <button id="send" type="submit">Send</button>
</form>
<script>
"use strict";
const log = document.getElementById("log"), input = document.getElementById("input"), send = document.getElementById("send");
const speed = document.getElementById("speed"), history = [];
const key = new URLSearchParams(location.search).get("key");
const headers = {"Content-Type": "application/json"};
if (key) headers["Authorization"] = "Bearer " + key;
fetch("/v1/models", {headers}).then(r => r.json()).then(j => {
  if (j.data) document.getElementById("model").textContent = j.data[0].id + " \u00b7 ctx " + j.data[0].meta.n_ctx;
}).catch(() => {});
function bubble(cls, text) {
  const d = document.createElement("div");
  d.className = "msg " + cls; d.textContent = text; log.appendChild(d); log.scrollTop = log.scrollHeight; return d;
}
async function ask(text) {
  history.push({role: "user", content: text});
  bubble("user", text);
  const out = bubble("assistant", "");
  send.disabled = true;
  const t0 = performance.now();
  let first = 0, tokens = 0, reply = "";
  try {
    const res = await fetch("/v1/chat/completions", {method: "POST", headers, body: JSON.stringify({
      messages: history, stream: true, temperature: +document.getElementById("temp").value,
      max_tokens: +document.getElementById("max").value})});
    if (!res.ok) throw new Error((await res.json()).error.message);
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, i).trim(); buf = buf.slice(i + 2);
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        const piece = j.choices.length ? (j.choices[0].delta.content || "") : "";
        if (!piece) continue;
        if (!first) first = performance.now();
        tokens++; reply += piece; out.textContent = reply; log.scrollTop = log.scrollHeight;
        const secs = (performance.now() - first) / 1000;
        speed.textContent = tokens + " pieces \u00b7 " + (secs > 0 ? (tokens - 1) / secs : 0).toFixed(1) + " /s \u00b7 first after " +
                            ((first - t0) / 1000).toFixed(2) + " s";
      }
    }
    history.push({role: "assistant", content: reply});
  } catch (e) {
    bubble("error", String(e.message || e));
  }
  send.disabled = false; input.focus();
}
document.getElementById("form").addEventListener("submit", e => {
  e.preventDefault();
  const text = input.value.trim();
  if (text && !send.disabled) { input.value = ""; ask(text); }
});
input.addEventListener("keydown", e => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); document.getElementById("form").requestSubmit(); }
});
const q = new URLSearchParams(location.search).get("q");
if (q) ask(q);
</script>
</body>
</html>
)PAGE";
}  // namespace

std::string_view chat_page_html() { return std::string_view(kPage, sizeof kPage - 1); }

}  // namespace pocketlm::server
