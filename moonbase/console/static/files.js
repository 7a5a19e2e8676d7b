// The files page's upload: the form goes by XMLHttpRequest so that a progress
// bar can follow it (fetch cannot report upload progress). The CSRF token goes
// as the X-CSRF-Token header, read from <body hx-headers> as htmx does, since
// the server never parses a multipart body to look for it (security.py).
(function () {
  "use strict";

  function token() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (e) {
      return "";
    }
  }

  function errorOf(xhr, fallback) {
    // The server answers a refusal with the page, its message in .error.
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var found = doc.querySelector("main .error");
      if (found && found.textContent.trim()) return found.textContent.trim();
    } catch (e) { /* fall through */ }
    return fallback;
  }

  function upload(form) {
    var bar = form.querySelector("progress");
    var status = form.querySelector("[role=status]");
    var failure = form.querySelector("[role=alert]");
    var button = form.querySelector("button[type=submit]");
    var xhr = new XMLHttpRequest();
    failure.hidden = true;
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    status.textContent = form.getAttribute("data-sending");
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      var percent = Math.floor((event.loaded / event.total) * 100);
      bar.value = percent;
      status.textContent = form.getAttribute("data-sending") + " " + percent + "%";
    });
    xhr.addEventListener("load", function () {
      var next = xhr.getResponseHeader("HX-Redirect");
      if (xhr.status >= 200 && xhr.status < 300 && next) {
        bar.value = 100;
        window.location.assign(next);
        return;
      }
      finish(errorOf(xhr, form.getAttribute("data-failed")));
    });
    xhr.addEventListener("error", function () { finish(form.getAttribute("data-failed")); });
    function finish(message) {
      button.disabled = false;
      bar.hidden = true;
      status.textContent = "";
      failure.textContent = message;
      failure.hidden = false;
      failure.focus();
    }
    xhr.open("POST", form.getAttribute("action"));
    xhr.setRequestHeader("X-CSRF-Token", token());
    xhr.setRequestHeader("HX-Request", "true");  // answer 204 + HX-Redirect
    xhr.send(new FormData(form));
  }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-upload]");
    if (!form || event.defaultPrevented) return;
    event.preventDefault();
    upload(form);
  });
})();
