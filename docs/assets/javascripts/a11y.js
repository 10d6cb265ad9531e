/*
 * Accessibility fixes over Material's generated markup, found by axe-core
 * (tests/site/test_accessibility.py).
 *
 * 1. Material wraps each code block's copy button in its own <nav>. Several unnamed <nav>
 * landmarks on one page fail axe-core's landmark-unique check, and a copy button is not
 * navigation: take the landmark role off the wrapper (role="none", allowed on <nav>).
 * 2. A code block with lines wider than the page scrolls sideways, and so do a notebook
 *    output and, on a phone, a diagram; a keyboard user can only scroll it if it can take focus
 *    (scrollable-region-focusable, WCAG 2.1.1).
 */
(function () {
  "use strict";
  function fix(root) {
    root.querySelectorAll("nav.md-code__nav").forEach(function (nav) {
      nav.setAttribute("role", "none");
    });
    var scrolling = ".md-typeset pre > code, .md-typeset .diagram, .md-typeset__scrollwrap, " +
      ".jupyter-wrapper .jp-OutputArea pre";
    root.querySelectorAll(scrolling).forEach(function (code) {
      if (code.scrollWidth > code.clientWidth && !code.hasAttribute("tabindex")) {
        code.setAttribute("tabindex", "0");
      }
    });
  }
  new MutationObserver(function () { fix(document); })
    .observe(document.documentElement, { childList: true, subtree: true });
  fix(document);
})();
