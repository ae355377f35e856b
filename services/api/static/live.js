/* Live updates of a standings page (progressive enhancement: the page works without it).
   Follows the category's Server-Sent Events stream from the seq the page was rendered at;
   on a rank change, fetches the same page again (its address keeps the page number and the
   filters) and swaps the table, its legend and its pagination in place. */
(function () {
  "use strict";
  var table = document.getElementById("classement");
  var status = document.getElementById("live-status");
  if (!table || !table.getAttribute("data-stream") || !window.EventSource || !window.fetch) {
    return;
  }
  var loading = false;
  var again = false;

  function say(text, changed) {
    if (!status) { return; }
    status.textContent = text;
    status.className = changed ? "live changed" : "live";
  }

  function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("classement");
        var current = document.getElementById("classement");
        if (fresh && current) {
          fresh.removeAttribute("data-stream");
          current.replaceWith(fresh);
        }
        var asOf = doc.getElementById("as-of");
        var oldAsOf = document.getElementById("as-of");
        if (asOf && oldAsOf) { oldAsOf.replaceWith(asOf); }
        var legend = doc.getElementById("link-legend");
        var oldLegend = document.getElementById("link-legend");
        if (legend && oldLegend) { oldLegend.replaceWith(legend); }
        var pages = doc.getElementById("pages");
        var oldPages = document.getElementById("pages");
        if (pages && oldPages) { oldPages.replaceWith(pages); }
        var time = new Date().toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit" });
        say("Classement mis à jour à " + time + ".", true);
      })
      .catch(function () { say("Mise à jour impossible pour l’instant ; rechargez la page.", false); })
      .then(function () {
        loading = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource(table.getAttribute("data-stream"));
  source.addEventListener("open", function () { say("Mises à jour en direct activées.", false); });
  source.addEventListener("rank-change", refresh);
  source.addEventListener("missed", refresh);
  source.addEventListener("reset", refresh);
  source.addEventListener("error", function () { say("Connexion en direct interrompue, nouvelle tentative…", false); });
})();
