// What htmx cannot do alone: keyboard shortcuts, click and shift-click selection in thumbnail
// grids, "click the first wrong object" in grow, "put it under its second guess" in suggestions,
// "type its label" (✎ or l) on any grid, and showing refused requests as a message.
(function () {
  "use strict";
  let last = null; // figure clicked last, anchor of shift-click ranges
  let shownAt = Date.now(); // when the current screen appeared, and whether it was used since:
  let touched = false;      // a decision key right after a new screen, untouched, is ignored
  document.addEventListener("pointerdown", function () { touched = true; }, true);
  document.addEventListener("input", function () { touched = true; }, true);
  let before = new Set(); // the objects on screen before a swap
  const onScreen = () => new Set([...document.querySelectorAll("#grid .obj")].map((f) => f.dataset.pk));
  document.addEventListener("htmx:beforeSwap", function () { before = onScreen(); });
  function mostlyNew() {
    // a new screen (another node, the next screen of suggestions), not the same one with a few
    // objects taken away or added
    const now = [...onScreen()];
    return now.length > 0 && now.filter((pk) => before.has(pk)).length < now.length / 2;
  }

  function gridOf(el) { return el && el.closest(".grid[data-select]"); }
  function formOf(grid) { return document.querySelector(grid.dataset.form); }

  function syncSelection(grid) {
    const sel = [...grid.querySelectorAll(".obj.sel")];
    grid.querySelectorAll(".obj").forEach((f) => f.setAttribute("aria-pressed", f.classList.contains("sel") ? "true" : "false"));
    const form = formOf(grid);
    if (!form) return;
    const pks = form.querySelector("input[name=pks]");
    if (pks) pks.value = sel.map((f) => f.dataset.pk).join(",");
    const moves = form.querySelector("input[name=moves]");
    const moved = [...grid.querySelectorAll(".obj.moved")];
    const typed = moved.filter((f) => f.dataset.label);
    if (moves) moves.value = moved.filter((f) => !f.dataset.label)
      .map((f) => f.dataset.pk + ":" + f.querySelector("button.alt").dataset.node).join(",");
    const relabel = form.querySelector("input[name=relabel]");
    if (relabel) relabel.value = typed.length ? JSON.stringify(Object.fromEntries(typed.map((f) => [f.dataset.pk, f.dataset.label]))) : "";
    const moveCount = document.getElementById("move-count");
    if (moveCount) moveCount.textContent = moved.length;
    const fromRank = form.querySelector("input[name=from_rank]");
    if (fromRank) fromRank.value = "";
    const count = document.getElementById("sel-count");
    if (count) count.textContent = sel.length;
  }

  function untype(fig) {
    // drop a label typed for this object
    delete fig.dataset.label;
    const tag = fig.querySelector(".tag");
    if (tag) { tag.hidden = true; tag.textContent = ""; }
  }

  // one label field per page (_relabel.html), moved into the object whose label is being typed
  function startRelabel(fig) {
    const inp = document.getElementById("relabel-input");
    if (!inp) return;
    inp.value = fig.dataset.label || "";
    fig.appendChild(inp);
    inp.hidden = false;
    inp.focus();
  }

  const newNames = new Set(); // new labels this screen's annotator said yes to (a page's lifetime)
  function finishRelabel(inp, apply, checked) {
    const fig = inp.closest(".obj");
    if (inp.dataset.pending) return; // its name is being checked (a dialog may be open)
    if (fig && apply && !checked && inp.value.trim()) {
      // a name no label has would make a new label: a typo should not, so ask first
      const value = inp.value.trim();
      inp.dataset.pending = "1";
      knownLabel(value).then((known) => {
        // asked once per new name on a screen: the next objects given it are not asked about
        const ok = known || newNames.has(value.toLowerCase()) ||
          window.confirm(`"${value}" is not a label yet. Make it a new label?`);
        if (ok && !known) newNames.add(value.toLowerCase());
        delete inp.dataset.pending;
        if (ok) finishRelabel(inp, true, true); else if (!inp.hidden) inp.focus();
      });
      return;
    }
    if (fig && apply) {
      const value = inp.value.trim();
      untype(fig);
      fig.classList.remove("sel", "moved");
      if (value) {
        fig.dataset.label = value;
        fig.classList.add("moved");
        const tag = fig.querySelector(".tag");
        tag.textContent = "→ " + value;
        tag.title = "→ " + value;
        tag.hidden = false;
      }
      syncSelection(gridOf(fig));
    }
    inp.hidden = true;
    inp.blur();
    const park = document.getElementById("relabel-park");
    if (park && inp.parentNode !== park) park.appendChild(inp);
  }

  function knownLabel(value) {
    // ask the server for the names in use starting like the last part of `value` (a path a>b
    // names its last level); known if one of them is it, ignoring case
    const leaf = value.split(">").pop().trim();
    const field = document.getElementById("relabel-input");
    const url = field.getAttribute("hx-get") + "&name=" + encodeURIComponent(leaf); // its own address
    return fetch(url, {credentials: "same-origin"}).then((r) => r.text()).then((html) => {
      const div = new DOMParser().parseFromString(html, "text/html").body; // inert: nothing runs or loads
      const v = leaf.toLowerCase();
      return [...div.querySelectorAll("option")].some((o) => {
        const n = o.value.toLowerCase();
        return n === v || n.split("<")[0] === v;
      });
    }).catch(() => true); // cannot tell: do not stand in the way
  }

  document.addEventListener("change", function (ev) {
    // not once it is closed: hiding or parking the field fires a late "change" of its own
    if (ev.target.id === "relabel-input" && !ev.target.hidden) finishRelabel(ev.target, true);
  });
  document.addEventListener("focusout", function (ev) {
    if (ev.target.id === "relabel-input" && !ev.target.hidden) finishRelabel(ev.target, false);
  });

  function clearSelection(grid) {
    grid.querySelectorAll(".obj.moved").forEach(untype);
    grid.querySelectorAll(".obj.sel, .obj.moved").forEach((f) => f.classList.remove("sel", "moved"));
    last = null;
    syncSelection(grid);
  }

  document.addEventListener("click", function (ev) {
    const fig = ev.target.closest(".obj");
    const grid = gridOf(fig);
    if (!fig || !grid || ev.target.closest("a.info") || ev.target.closest("input")) return;
    ev.preventDefault();
    if (ev.target.closest("button.relabel")) {
      startRelabel(fig);
      return;
    }
    if (ev.target.closest("button.alt")) {
      // suggestions: the object's second guess is right; it goes there instead
      const typed = !!fig.dataset.label;
      untype(fig);
      fig.classList.remove("sel");
      fig.classList.toggle("moved", typed || !fig.classList.contains("moved"));
      syncSelection(grid);
      return;
    }
    const ctrlMode = grid.dataset.select === "ctrl";
    const modifier = ev.ctrlKey || ev.metaKey;
    if (grid.hasAttribute("data-direct") && !modifier && !ev.shiftKey) {
      // grow, direct method: this is the first object that does not belong
      const form = formOf(grid);
      form.querySelector("input[name=rank]").value = fig.dataset.rank;
      form.querySelector("input[name=wrong_pk]").value = fig.dataset.pk;
      document.getElementById("until-btn").click();
      return;
    }
    if (ctrlMode && !modifier && !ev.shiftKey) return;
    const figs = [...grid.querySelectorAll(".obj")];
    if (ev.shiftKey && last && grid.contains(last)) {
      const a = figs.indexOf(last), b = figs.indexOf(fig);
      const [lo, hi] = a < b ? [a, b] : [b, a];
      for (let i = lo; i <= hi; i++) { figs[i].classList.add("sel"); figs[i].classList.remove("moved"); untype(figs[i]); }
    } else {
      fig.classList.toggle("sel");
      fig.classList.remove("moved");
      untype(fig);
    }
    last = fig;
    syncSelection(grid);
  });

  // fill "seen"/"shown" with every object loaded in the grid, and "from_rank" for "remove from here on"
  document.addEventListener("htmx:configRequest", function (ev) {
    const elt = ev.detail.elt;
    const form = elt.closest("form");
    if (!form) return;
    const seen = form.querySelector("input[data-seen]");
    if (seen && ev.detail.verb !== "get") {  // decisions only: a GET's parameters go in the address
      const grid = document.querySelector(seen.dataset.seen);
      if (grid) ev.detail.parameters[seen.name] = [...grid.querySelectorAll(".obj")].map((f) => f.dataset.pk).join(",");
    }
    if (elt.hasAttribute("data-from-rank")) {
      const first = document.querySelector(".grid .obj.sel");
      ev.detail.parameters["from_rank"] = first ? first.dataset.rank : "";
      ev.detail.parameters["pks"] = "";
    }
  });

  document.addEventListener("htmx:confirm", function (ev) {
    const elt = ev.detail.elt;
    const need = elt.dataset && elt.dataset.needsField;  // e.g. merge: a node typed first, then the question
    if (need && elt.form && !(elt.form.elements[need] && elt.form.elements[need].value.trim())) {
      ev.preventDefault();
      showToast(elt.dataset.needsText || "Fill in the field first.", true);
      return;
    }
    if (elt.hasAttribute && elt.hasAttribute("data-needs-selection") && !document.querySelector(".grid .obj.sel, .grid .obj[data-label]")) {
      ev.preventDefault();
      const ctrl = document.querySelector('.grid[data-select="ctrl"]');
      showToast(ctrl ? "Select objects first: Ctrl-click them (a plain click accepts up to there)."
                     : "Select objects first: click, shift-click for a range.", true);
    }
  });

  function showToast(text, isError) {
    const t = document.getElementById("toast");
    if (!t) return;
    const span = document.createElement("span");
    span.className = isError ? "error" : "info";
    span.textContent = text;
    t.replaceChildren(span); // the live region stays; its text changes
    t.className = "toast";
    fadeLater(t);
  }

  function fadeLater(t) {
    clearTimeout(t._timer);
    // a refusal or an error stays until the next message or a click on it: it may need reading twice
    if (t.querySelector(".error") || t.classList.contains("error")) return;
    t._timer = setTimeout(() => {
      t.classList.add("fade");
      // empty it once faded, so that a later swap does not bring the old message back
      t._timer = setTimeout(() => { t.textContent = ""; t.classList.remove("fade"); }, 700);
    }, 4000);
  }

  document.addEventListener("click", function (ev) {
    const t = ev.target.closest && ev.target.closest("#toast");
    if (t) { clearTimeout(t._timer); t.textContent = ""; }
  });

  document.addEventListener("htmx:responseError", function (ev) {
    const div = new DOMParser().parseFromString(ev.detail.xhr.responseText, "text/html").body;
    const p = div.querySelector("p") || div;
    showToast((p.textContent || "").trim() || ("Error " + ev.detail.xhr.status), true);
  });

  document.addEventListener("htmx:afterSettle", function (ev) {
    if (ev.detail && ev.detail.target && ev.detail.target.id === "main" && mostlyNew()) {
      shownAt = Date.now();
      touched = false;
    }
    const t = document.getElementById("toast");
    if (t && t.textContent.trim()) { t.classList.remove("fade"); fadeLater(t); }
  });
  // grid cell size: + and - keys, remembered in this browser
  function zoom(step) {
    const now = parseInt(localStorage.getItem("mc-cell") || "104", 10);
    const next = Math.max(56, Math.min(256, now + step));
    localStorage.setItem("mc-cell", String(next));
    document.documentElement.style.setProperty("--cell-size", next + "px");
  }
  const savedCell = localStorage.getItem("mc-cell");
  if (savedCell) document.documentElement.style.setProperty("--cell-size", savedCell + "px");

  document.addEventListener("DOMContentLoaded", function () {
    const t = document.getElementById("toast");
    if (t && t.textContent.trim()) fadeLater(t);
  });

  document.addEventListener("mc:touched", () => { touched = true; }); // a key of keys.js decided
  document.addEventListener("keydown", function (ev) {
    // a dialog (the keys help) is open: its keys are its own, none decides the screen behind it
    if (document.querySelector("dialog[open]")) return;
    if (ev.target.id === "relabel-input" && (ev.key === "Enter" || ev.key === "Escape")) {
      ev.preventDefault();
      finishRelabel(ev.target, ev.key === "Enter");
      return;
    }
    // Enter in a field of a toolbar form presses the button that goes with it: the form's main
    // button for a name field (approve, name), else the first button after the field (merge,
    // move under). The browser would otherwise press the form's FIRST button (approve).
    if (ev.key === "Enter" && ev.target.matches && ev.target.matches("input") && ev.target.form &&
        !ev.target.form.hasAttribute("action") && !ev.target.form.hasAttribute("hx-post")) {
      ev.preventDefault();
      const form = ev.target.form;
      let btn = ev.target.matches(".name-input") ? form.querySelector("[data-enter]") : null;
      if (!btn) {
        btn = [...form.querySelectorAll("button")].find((b) =>
          ev.target.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
      }
      if (btn && !btn.disabled) btn.click();
      return;
    }
    if (ev.key === "Escape" && ev.target.matches && ev.target.matches("input, textarea")) {
      ev.target.blur(); // back to the keys of the screen
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || ev.target.isContentEditable) return;
    if (ev.key === "+" || ev.key === "=" || ev.key === "-") { zoom(ev.key === "-" ? -16 : 16); return; }
    if (ev.key === "l") {
      const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".grid .obj");
      const fig = [focused, ...document.querySelectorAll(".grid .obj:hover")].find((f) => f && f.querySelector("button.relabel"));
      if (fig) { ev.preventDefault(); startRelabel(fig); }
      return;
    }
    if (ev.key === "Escape") { document.querySelectorAll(".grid[data-select]").forEach(clearSelection); return; }
    const target = document.querySelector('[data-key="' + CSS.escape(ev.key) + '"]:not([disabled])');
    if (target) {
      ev.preventDefault();
      // a key held down, or pressed twice, must not decide a screen not seen yet
      if (target.hasAttribute("hx-post") && ev.repeat) return;
      if (target.hasAttribute("hx-post") && !touched && Date.now() - shownAt < 500) {
        showToast("That key came as the screen changed, so it was ignored: look, then press it again.", true);
        return;
      }
      // htmx initialises swapped-in content only after its settle delay; a key pressed right
      // after a swap would otherwise click a button htmx has not wired up yet (a no-op).
      if (window.htmx) htmx.process(target);
      target.click();
      return;
    }
    if (ev.key === "u") { const b = document.getElementById("undo-btn"); if (b) { ev.preventDefault(); b.click(); } return; }
  });

  // the pointer goes back to the objects: the name field has done its job, so the keys (l, r, a)
  // are for the screen again, not typed into the name
  document.addEventListener("mouseover", function (ev) {
    const a = document.activeElement;
    if (a && a.matches && a.matches("input.name-input") && ev.target.closest && ev.target.closest(".grid")) a.blur();
  });

  // leaving a screen with marks (selected, moved or typed objects) not applied yet: ask first;
  // not when a decision sent them (its answer may send the browser on)
  let deciding = false;
  document.addEventListener("htmx:beforeRequest", function (ev) {
    if ((ev.detail.requestConfig || {}).verb !== "get") deciding = true;
  });
  document.addEventListener("htmx:afterSettle", function () { deciding = false; });
  document.addEventListener("htmx:responseError", function () { deciding = false; });
  window.addEventListener("beforeunload", function (ev) {
    if (!deciding && document.querySelector(".grid .obj.sel, .grid .obj.moved")) {
      ev.preventDefault();
      ev.returnValue = "";
    }
  });
})();
