/*
 * Accessibility fixes over Material's generated markup, found by axe-core
 * (tests/site/test_accessibility.py).
 *
 * 1. Material wraps each code block's copy button in its own <nav>. Several unnamed <nav>
 *    landmarks on one page fail axe-core's landmark-unique check, and a copy button is not
 *    navigation: take the landmark role off the wrapper (role="none", allowed on <nav>).
 * 2. A code block with lines wider than the page scrolls sideways, and so do a notebook
 *    output and, on a phone, a diagram; a keyboard user can only scroll it if it can take focus
 *    (scrollable-region-focusable, WCAG 2.1.1).
 *
 * Whether a box scrolls is a layout question. It is asked in a ResizeObserver callback, which
 * the browser runs right after it has laid the page out, so the answer costs no layout of its
 * own. (Asking it from a MutationObserver, as this file did, made the browser restyle and lay
 * out the whole page once more at load and after every batch of changes Material made: on a
 * topic page, ~2,800 elements each time, the second largest cause of main-thread blocking in
 * Lighthouse's mobile emulation on this host, after Material's own start-up; issue 11.)
 *
 * Material has its own say: when it sets a code block up (with content.lazy, the first time
 * the block scrolls into view, after this file marked it) it takes tabindex off unless the
 * device can hover (components/content/code: `scrollable && hover`), so on a touch screen
 * with a keyboard the block lost its focus stop, and the size watch above never fires again
 * for a box whose size did not change. So the boxes found scrolling are remembered, and every
 * DOM change (Material's set-up inserts the copy button) or tabindex change puts it back,
 * without reading sizes (tests/site/test_browser.py, the touch-screen test).
 */
(function () {
  "use strict";
  var SCROLLING = ".md-typeset pre > code, .md-typeset .diagram, .md-typeset__scrollwrap, " +
    ".jupyter-wrapper .jp-OutputArea pre";
  var watched = new Set();
  var scrolls = new Set();  // boxes the size watch found wider than themselves
  var sizes = new ResizeObserver(function (entries) {
    // All reads first, then the writes: a write between two reads would dirty the layout.
    var scrolling = entries.map(function (entry) {
      var box = entry.target;
      return box.scrollWidth > box.clientWidth;
    });
    entries.forEach(function (entry, i) {
      if (scrolling[i]) {
        scrolls.add(entry.target);
        if (!entry.target.hasAttribute("tabindex")) entry.target.setAttribute("tabindex", "0");
      } else {
        scrolls.delete(entry.target);
      }
    });
  });
  // Selectors only: nothing here reads layout or computed style.
  function fix() {
    document.querySelectorAll("nav.md-code__nav:not([role])").forEach(function (nav) {
      nav.setAttribute("role", "none");
    });
    watched.forEach(function (box) {  // gone with a page that instant navigation replaced
      if (!box.isConnected) {
        sizes.unobserve(box);
        watched.delete(box);
        scrolls.delete(box);
      }
    });
    scrolls.forEach(function (box) {
      if (!box.hasAttribute("tabindex")) box.setAttribute("tabindex", "0");
    });
    document.querySelectorAll(SCROLLING).forEach(function (box) {
      if (!watched.has(box)) {
        watched.add(box);
        sizes.observe(box);
      }
    });
  }
  new MutationObserver(fix).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true, attributeFilter: ["tabindex"]
  });
  fix();
})();
