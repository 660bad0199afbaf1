// Auto-refresh of the Status page's panel: fetch the panel alone every few seconds and swap it
// in. A 401 means the session ended: reload, which leads to the sign-in page. Nothing else here.
(function () {
  "use strict";
  var panel = document.getElementById("status-panel");
  if (!panel) { return; }
  var url = panel.getAttribute("data-refresh-url");
  var every = 1000 * (parseInt(panel.getAttribute("data-refresh-seconds"), 10) || 5);
  var busy = false;

  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        if (html !== null) {
          panel.innerHTML = html;
          panel.removeAttribute("data-stale");
        }
      })
      .catch(function () {
        // Say so rather than keep showing old readings as if they were current.
        panel.setAttribute("data-stale", "true");
      })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, every);
})();
