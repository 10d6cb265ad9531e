/*
 * Material wraps each code block's copy button in its own <nav>. Several unnamed <nav>
 * landmarks on one page fail axe-core's landmark-unique check, and a copy button is not
 * navigation: take the landmark role off the wrapper (role="none", allowed on <nav>).
 */
(function () {
  "use strict";
  function label(root) {
    root.querySelectorAll("nav.md-code__nav").forEach(function (nav) {
      nav.setAttribute("role", "none");
    });
  }
  new MutationObserver(function () { label(document); })
    .observe(document.documentElement, { childList: true, subtree: true });
  label(document);
})();
