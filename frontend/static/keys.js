/* Keyboard use of the screens' objects, and the header's height for the sticky toolbar.
   Loaded before app.js: a key handled here (arrows, Space, Enter on an object) goes no further. */
(function () {
  "use strict";
  function gridOf(el) { return el && el.closest(".grid[data-select]"); }

  // the objects of a grid are reached with the keyboard too: Tab to the grid, arrows between its
  // objects, Space selects (as a click; on grow, as Ctrl-click), Enter clicks (on grow: the first
  // wrong object); one tab stop per grid
  function keyboardGrid(root) {
    (root || document).querySelectorAll(".grid[data-select]").forEach((grid) => {
      const figs = [...grid.querySelectorAll(".obj")];
      if (!figs.length) return;
      figs.forEach((f) => {
        if (!f.hasAttribute("tabindex")) f.setAttribute("tabindex", "-1");
        f.setAttribute("role", "button");
        if (!f.hasAttribute("aria-pressed")) f.setAttribute("aria-pressed", "false");
        const img = f.querySelector("img");
        if (img && !f.hasAttribute("aria-label")) f.setAttribute("aria-label", img.alt);
      });
      if (!figs.some((f) => f.getAttribute("tabindex") === "0")) figs[0].setAttribute("tabindex", "0");
    });
  }
  // working from the keyboard: after a decision the new screen's objects get the focus back
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Tab" || ev.key.startsWith("Arrow") || ev.key === " ") sessionStorage.setItem("mc-kbd", "1");
  }, true);
  document.addEventListener("pointerdown", () => sessionStorage.removeItem("mc-kbd"), true);
  function refocus() {
    const a = document.activeElement;
    if (!sessionStorage.getItem("mc-kbd") || (a && a !== document.body) || document.querySelector("dialog[open]")) return;
    keyboardGrid();
    const fig = document.querySelector('.grid[data-select] .obj[tabindex="0"]');
    if (fig) fig.focus({preventScroll: true});
  }
  document.addEventListener("DOMContentLoaded", () => { keyboardGrid(); refocus(); });
  document.addEventListener("htmx:afterSettle", refocus);
  // the sticky toolbar sits right under the header, however many lines the header wraps to
  function headerHeight() {
    const h = document.querySelector("header.top");
    if (h) document.documentElement.style.setProperty("--header-h", h.offsetHeight + "px");
  }
  document.addEventListener("DOMContentLoaded", headerHeight);
  window.addEventListener("resize", headerHeight);
  document.addEventListener("htmx:afterSettle", () => keyboardGrid());

  function moveFocus(fig, key) {
    const figs = [...gridOf(fig).querySelectorAll(".obj")];
    const i = figs.indexOf(fig);
    const cols = Math.max(1, figs.filter((f) => f.offsetTop === figs[0].offsetTop).length);
    const step = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols, Home: -i, End: figs.length - 1 - i}[key];
    const next = figs[Math.max(0, Math.min(figs.length - 1, i + step))];
    fig.setAttribute("tabindex", "-1");
    next.setAttribute("tabindex", "0");
    next.focus();
  }

  function gridKey(ev) {
    const fig = ev.target.closest && ev.target.closest(".obj");
    if (!fig || fig !== ev.target || !gridOf(fig) || ev.ctrlKey || ev.metaKey || ev.altKey) return false;
    if (["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"].includes(ev.key)) {
      ev.preventDefault();
      moveFocus(fig, ev.key);
      return true;
    }
    if (ev.key === " " || ev.key === "Enter") {
      ev.preventDefault();
      document.dispatchEvent(new Event("mc:touched")); // app.js: this key was a look, not a reflex
      const ctrl = ev.key === " " && gridOf(fig).dataset.select === "ctrl";
      fig.dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true, ctrlKey: ctrl, shiftKey: ev.shiftKey}));
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", function (ev) {
    if (document.querySelector("dialog[open]")) return; // the keys help is open: nothing acts behind it
    if (gridKey(ev)) ev.stopImmediatePropagation();
  });
})();
