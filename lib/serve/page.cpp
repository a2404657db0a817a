// The page asks /info for the labels once, then POSTs {"inputs", "parameters": {"top_k": n}} to
// /predict and draws the answer best first. An API key field sends "Authorization: Bearer".
#include "serve/page.h"

namespace hf::serve {

std::string_view index_page() {
  static constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hfkit: classify text</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
textarea { width: 100%; min-height: 8rem; font: inherit; padding: .5rem; box-sizing: border-box; }
button { font: inherit; padding: .4rem 1.2rem; margin-top: .5rem; }
.row { display: flex; align-items: center; margin: .3rem 0; }
.name { width: 12rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar { flex: 1; background: #eee; height: 1.2rem; margin: 0 .5rem; }
.fill { background: #3b7dd8; height: 100%; }
.top .fill { background: #1d9a4a; }
.value { width: 4rem; text-align: right; font-variant-numeric: tabular-nums; }
#error { color: #b00020; }
small { color: #666; }
</style>
</head>
<body>
<h1>Classify text</h1>
<p><small id="model">loading model information...</small></p>
<textarea id="text" placeholder="Type or paste text here"></textarea>
<div><input id="key" type="password" placeholder="API key (if the server needs one)" size="30">
<button id="go" type="button">Classify</button></div>
<p id="error"></p>
<div id="label"></div>
<div id="bars"></div>
<script>
"use strict";
let labels = [];
function headers() {
  const h = {"Content-Type": "application/json"};
  const key = document.getElementById("key").value;
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}
fetch("/info", {headers: headers()}).then(r => r.ok ? r.json() : null).then(info => {
  if (!info) { document.getElementById("model").textContent = ""; return; }
  labels = info.labels || [];
  document.getElementById("model").textContent = "model " + info.model + " (" + labels.length + " labels, " + info.task + ")";
}).catch(() => {});
function show(scores) {
  const bars = document.getElementById("bars");
  bars.textContent = "";
  scores.forEach((s, i) => {
    const row = document.createElement("div");
    row.className = "row" + (i === 0 ? " top" : "");
    const name = document.createElement("span"); name.className = "name"; name.textContent = s.label;
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("div"); fill.className = "fill";
    fill.style.width = Math.max(0, Math.min(1, s.score)) * 100 + "%";
    bar.appendChild(fill);
    const value = document.createElement("span"); value.className = "value"; value.textContent = s.score.toFixed(3);
    row.append(name, bar, value);
    bars.appendChild(row);
  });
  document.getElementById("label").innerHTML = "";
  const b = document.createElement("b"); b.id = "prediction"; b.textContent = scores.length ? scores[0].label : "";
  document.getElementById("label").append("Prediction: ", b);
}
document.getElementById("go").addEventListener("click", () => {
  const err = document.getElementById("error");
  err.textContent = "";
  const body = {inputs: document.getElementById("text").value, parameters: {top_k: Math.max(1, labels.length || 1000)}};
  fetch("/predict", {method: "POST", headers: headers(), body: JSON.stringify(body)})
    .then(r => r.json().then(j => ({ok: r.ok, j})))
    .then(({ok, j}) => { if (!ok) throw new Error(j.error || "request failed"); show(j); })
    .catch(e => { err.textContent = String(e.message || e); });
});
</script>
</body>
</html>
)HTML";
  return kPage;
}

}  // namespace hf::serve
