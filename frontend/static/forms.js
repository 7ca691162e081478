/* What used to be inline handlers in the templates (the Content-Security-Policy allows no inline
   script, no eval): toolbar forms that never submit themselves, a question before a submit,
   buttons that open a dialog, a parameter read from another field. */
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    // a toolbar form: its buttons send htmx requests; Enter in a field must not reload the page
    if (form.hasAttribute("data-no-submit")) { ev.preventDefault(); return; }
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) ev.preventDefault();
  });
  // a request parameter taken from another field (hx-vals "js:" would need eval): data-param
  // names it, data-param-from is the field's selector
  document.addEventListener("htmx:configRequest", function (ev) {
    const elt = ev.detail.elt;
    const from = elt.dataset && elt.dataset.paramFrom && document.querySelector(elt.dataset.paramFrom);
    if (from) ev.detail.parameters[elt.dataset.param] = from.value;
  });
  document.addEventListener("click", function (ev) {
    const btn = ev.target.closest && ev.target.closest("[data-opens]");
    const dialog = btn && document.getElementById(btn.dataset.opens);
    if (dialog && dialog.showModal) dialog.showModal();
  });
})();
