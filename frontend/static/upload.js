/* The import page's upload: the ZIP is sent as the request body (options in the query string)
   with a progress bar; the server answers with the job's page, where the import's progress
   shows. URLs come from data- attributes, so the app may live under a prefix. */
(function () {
  "use strict";
  let xhr = null;

  function say(form, text, isError) {
    const status = form.querySelector("#upload-status");
    status.textContent = text;
    status.className = isError ? "error" : "muted";
    const t = document.getElementById("toast");
    if (t && isError) {
      const span = document.createElement("span");
      span.className = "error";
      span.textContent = text;
      t.replaceChildren(span);
    }
  }

  function errorText(req) {
    try {
      const data = JSON.parse(req.responseText);
      if (data && data.error) return data.error;
    } catch (e) { /* an HTML error page */ }
    const body = new DOMParser().parseFromString(req.responseText || "", "text/html").body;
    const p = body && (body.querySelector("p") || body);
    return ((p && p.textContent) || "").trim() || ("Error " + req.status);
  }

  function mib(n) { return (n / 1048576).toFixed(1) + " MiB"; }

  function busy(form, on) {
    form.querySelectorAll("button[name=then], input, select").forEach(function (el) { el.disabled = on; });
    form.querySelector("#upload-stop").hidden = !on;
    form.querySelector("#upload-bar").hidden = !on;
  }

  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (!form.matches || !form.matches("form[data-upload-url]")) return;
    ev.preventDefault();
    if (xhr) return; // one upload at a time
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) { say(form, "Choose a ZIP file first.", true); return; }
    const max = Number(form.dataset.maxBytes);
    if (max && file.size > max) {
      say(form, file.name + " is " + mib(file.size) + ", above the upload limit of " + form.dataset.maxText + ".", true);
      return;
    }
    const params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string" && value !== "") params.append(key, value);
    });
    if (ev.submitter && ev.submitter.name) params.set(ev.submitter.name, ev.submitter.value);
    params.set("name", file.name);
    const bar = form.querySelector("#upload-bar");
    xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.uploadUrl + "?" + params.toString());
    xhr.setRequestHeader("X-CSRFToken", document.body.dataset.csrf || "");
    xhr.setRequestHeader("Content-Type", "application/zip");
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      bar.value = e.loaded / e.total;
      say(form, "Uploading " + file.name + ": " + mib(e.loaded) + " of " + mib(e.total) + " (" + Math.floor(100 * e.loaded / e.total) + " %)");
    });
    xhr.addEventListener("load", function () {
      const req = xhr;
      xhr = null;
      if (req.status >= 200 && req.status < 300) {
        say(form, "Uploaded; the import starts.");
        window.location.assign(JSON.parse(req.responseText).url);
        return;
      }
      busy(form, false);
      say(form, errorText(req), true);
    });
    xhr.addEventListener("error", function () { xhr = null; busy(form, false); say(form, "The upload failed (the connection broke off); nothing was stored.", true); });
    xhr.addEventListener("abort", function () { xhr = null; busy(form, false); say(form, "Upload stopped; nothing was stored."); });
    busy(form, true);
    bar.value = 0;
    say(form, "Uploading " + file.name + " …");
    xhr.send(file);
  });

  document.addEventListener("click", function (ev) {
    if (ev.target.id === "upload-stop" && xhr) xhr.abort();
  });
})();
