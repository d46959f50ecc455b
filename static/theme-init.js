/* rollgate: apply the remembered theme before the first paint.
 * Optional; load it in <head> WITHOUT defer (app.js does the same later,
 * so pages that skip this file only show the OS theme for a moment).
 * Kept separate so a Content-Security-Policy needs no inline script. */
(function () {
  try {
    var t = localStorage.getItem("rollgate-theme");
    if (t === "dark" || t === "light") document.documentElement.setAttribute("data-theme", t);
  } catch (e) {
    /* storage blocked: the OS preference applies */
  }
})();
