// kaigo-hub console, Flow page: reads GET /console/flow.json every few seconds and puts each
// count into the <text data-count="NAME"> and data-queued="NAME" elements of svg#flow.
// Served by the hub itself; no other script, no network asset.
(function () {
  "use strict";
  var svg = document.getElementById("flow");
  if (!svg) { return; }
  var every = Number(svg.getAttribute("data-refresh-ms")) || 3000;
  function put(attr, values) {
    Object.keys(values || {}).forEach(function (name) {
      svg.querySelectorAll("[" + attr + "=\"" + name + "\"]").forEach(function (t) {
        var v = values[name];
        t.textContent = v === null || v === undefined ? "?" : String(v);
      });
    });
  }
  function refresh() {
    fetch("/console/flow.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 200) { return r.json(); }
        if (r.redirected || r.status === 401 || r.status === 403) { window.location = "/console/login"; }
        throw new Error("flow.json: " + r.status);
      })
      .then(function (j) {
        put("data-count", j.counts);
        put("data-queued", j.queued);
        var at = document.getElementById("flow-updated");
        if (at) { at.textContent = j.at; }
      })
      .catch(function () { /* keep the last counts; the next tick tries again */ })
      .then(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();
