// Loopcard card page: optional helpers; every page works without them.
"use strict";
(function () {
  // IBAN: checked as typed (ISO 13616 mod 97), so a typing error is seen
  // before the form is sent. The server checks again.
  function ibanOK(v) {
    var s = v.replace(/\s+/g, "").toUpperCase();
    if (!/^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/.test(s)) return false;
    var r = s.slice(4) + s.slice(0, 4), m = 0;
    for (var i = 0; i < r.length; i++) {
      var c = r.charCodeAt(i);
      m = c >= 65 ? (m * 100 + c - 55) % 97 : (m * 10 + c - 48) % 97;
    }
    return m === 1;
  }
  document.querySelectorAll("input[data-iban-error]").forEach(function (el) {
    el.addEventListener("change", function () {
      el.setCustomValidity(el.value === "" || ibanOK(el.value) ? "" : el.dataset.ibanError);
    });
  });
})();
