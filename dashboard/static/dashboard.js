// faultproof dashboard: live updates without a reload, and copy buttons. No framework, no CDN.
// The server pushes "update" events (server-sent events) when the ledger or an oracle changed;
// the page then fetches its own live region (?partial=1) and swaps it in. Without EventSource
// (or while the stream is down) it polls every 5 s instead.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var state = document.getElementById("live-state");
  var version = live ? live.getAttribute("data-version") : null;
  var busy = false, again = false;
  var streaming = false;  // the server's event stream is up: the state says "live" while it is

  function say(text) { if (state) state.textContent = text; }

  function partialUrl() {
    var u = new URL(window.location.href);
    u.searchParams.set("partial", "1");
    return u.toString();
  }

  function refresh() {
    if (!live) return;
    if (busy) { again = true; return; }
    busy = true;
    fetch(partialUrl(), { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
      .then(function (html) {
        var focused = document.activeElement && document.activeElement.getAttribute("data-copy");
        var open = Array.prototype.map.call(live.querySelectorAll("details[open][id]"), function (d) { return d.id; });
        live.innerHTML = html;
        open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        live.setAttribute("data-version", String(version));
        if (focused) {  // keep keyboard focus on the same copy button after a swap
          var again_ = live.querySelector('[data-copy="' + focused + '"]');
          if (again_) again_.focus();
        }
        say((streaming ? "live, " : "") + "updated " + new Date().toLocaleTimeString());
      })
      .catch(function (e) { say("update failed (" + e.message + "), retrying"); })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }

  function start() {
    if (window.EventSource) {
      var es = new EventSource("/events");
      es.addEventListener("update", function (ev) {
        var v = JSON.parse(ev.data).version;
        streaming = true;
        say("live");
        if (String(v) !== String(version)) { version = v; refresh(); }
      });
      es.onerror = function () { streaming = false; say("reconnecting…"); };
    } else {
      say("polling every 5 s");
      setInterval(refresh, 5000);
    }
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button.copy") : null;
    if (!b) return;
    var text = b.getAttribute("data-copy");
    var done = function () { b.textContent = "copied"; setTimeout(function () { b.textContent = "copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else { fallback(text); done(); }
  });

  function fallback(text) {
    var t = document.createElement("textarea");
    t.value = text; t.setAttribute("readonly", ""); t.style.position = "absolute"; t.style.left = "-9999px";
    document.body.appendChild(t); t.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more we can do offline */ }
    document.body.removeChild(t);
  }

  start();
})();
