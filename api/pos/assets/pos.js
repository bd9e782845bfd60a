// Loopcard POS: the "present the card" page changes to the result as soon
// as the card is done (a long poll); without this script the page has a
// link to look again.
"use strict";
(function () {
  var el = document.querySelector("[data-poll]");
  if (!el) return;
  function poll() {
    fetch(el.dataset.poll, {cache: "no-store", credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (s) { if (s.done) { location.replace("/result"); } else { poll(); } })
      .catch(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
