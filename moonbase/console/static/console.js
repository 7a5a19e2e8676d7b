// The console's own script (no inline scripts: the Content-Security-Policy
// allows only files from this origin). Progressive: every form works
// without it; it adds copy buttons, confirmations, auto-submitting selects
// and the usage chart.
(function () {
  "use strict";

  function onReady(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  // <button data-copy="#secret" data-copied="Copied">: copy the field's text.
  function copy(button) {
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    var label = button.textContent;
    var done = function () {
      button.textContent = button.getAttribute("data-copied") || label;
      window.setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { fallback(field); done(); });
    } else {
      fallback(field);
      done();
    }
  }

  function fallback(field) {
    field.focus();
    field.select();
    try { document.execCommand("copy"); } catch (e) { /* the text stays selected */ }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) copy(button);
  });

  // <form data-confirm="...">: ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
  }, true);

  // <select data-autosubmit>: choosing is submitting (the button stays for keyboards).
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
  });

  // Counts: whole steps on the y axis, never 0.2 of a request.
  var INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5,
    2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8, 2e8, 5e8, 1e9];
  var PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4b5563"];

  function drawChart(holder) {
    var source = document.getElementById(holder.id + "-data");
    if (!source || typeof uPlot === "undefined") return;
    var chart = JSON.parse(source.textContent);
    var xs = chart.labels.map(function (_, i) { return i; });
    var series = [{
      label: chart.x,
      value: function (u, i) { return i == null ? "–" : (chart.labels[i] || ""); }
    }];
    var data = [xs];
    chart.series.forEach(function (s, i) {
      series.push({ label: s.name, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: false } });
      data.push(s.values);
    });
    var width = function () { return Math.max(280, holder.clientWidth); };
    var plot = new uPlot({
      width: width(),
      height: 260,
      series: series,
      scales: { x: { time: false } },
      axes: [
        { values: function (u, splits) { return splits.map(function (i) { return chart.labels[i] || ""; }); } },
        { label: chart.y, size: 60, incrs: INCREMENTS }
      ],
      cursor: { drag: { x: false, y: false } }
    }, data, holder);
    window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 260 }); });
  }

  onReady(function () {
    document.querySelectorAll(".chart[id]").forEach(drawChart);
    // An invitation's token comes in the link's fragment (never sent to a server).
    var hash = window.location.hash.slice(1);
    document.querySelectorAll("input[data-from-fragment]").forEach(function (input) {
      if (hash && !input.value) input.value = decodeURIComponent(hash);
    });
  });
})();

// The playground (playground.html): the request is posted to the console,
// which streams the API's server-sent events back; the page never holds a key.
(function () {
  "use strict";

  var MAX_IMAGE = 10 * 1024 * 1024;

  function start() {
    var form = document.querySelector("form[data-playground]");
    var source = document.getElementById("playground-data");
    if (!form || !source) return;
    var data = JSON.parse(source.textContent);
    var labels = data.labels;
    var $ = function (id) { return document.getElementById(id); };
    var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    var models = {};
    data.models.forEach(function (m) { models[m.id] = m; });
    var image = null; // a data URL
    var running = null; // the AbortController of the answer being streamed
    var countTimer = null;
    var countSeq = 0;

    function fill(template, values) {
      return template.replace(/\{(\w+)\}/g, function (_, name) {
        return name in values ? values[name] : "{" + name + "}";
      });
    }
    function number(n) { return Number(n).toLocaleString(data.language); }
    function model() { return models[$("pg-model").value]; }

    function showModel() {
      var m = model();
      if (!m) return;
      var caps = [labels["thinking_" + m.thinking], labels.tools];
      if (m.image) caps.push(labels.image);
      if (m.video) caps.push(labels.video);
      $("pg-model-info").textContent = labels.context + ": " + number(m.context) + " · " + caps.join(" · ");
      $("pg-image").disabled = !m.image;
      $("pg-image-hint").textContent = m.image ? $("pg-image-hint").getAttribute("data-hint") : labels.image_unsupported;
      if (!m.image) { image = null; $("pg-image").value = ""; }
    }
    $("pg-image-hint").setAttribute("data-hint", $("pg-image-hint").textContent);

    function fail(message) {
      var box = $("pg-error");
      box.textContent = message;
      box.hidden = !message;
    }

    // The request exactly as the API takes it (without stream: the console adds it).
    function build() {
      var m = model();
      var messages = [];
      var system = $("pg-system").value.trim();
      if (system) messages.push({ role: "system", content: system });
      var text = $("pg-user").value;
      if (image && m && m.image) {
        messages.push({ role: "user", content: [
          { type: "image_url", image_url: { url: image } },
          { type: "text", text: text }
        ] });
      } else {
        messages.push({ role: "user", content: text });
      }
      var request = { model: $("pg-model").value, messages: messages };
      var max = parseInt($("pg-max-tokens").value, 10);
      if (max > 0) request.max_tokens = max;
      var format = $("pg-format").value;
      if (format === "json_object") request.response_format = { type: "json_object" };
      if (format === "json_schema") {
        var schema;
        try { schema = JSON.parse($("pg-schema").value); } catch (e) { throw new Error(labels.bad_schema); }
        if (!schema || typeof schema !== "object" || Array.isArray(schema)) throw new Error(labels.bad_schema);
        request.response_format = { type: "json_schema", json_schema: schema };
      }
      var tools = $("pg-tools").value.trim();
      if (tools) {
        var parsed;
        try { parsed = JSON.parse(tools); } catch (e) { throw new Error(labels.bad_tools); }
        if (!Array.isArray(parsed)) throw new Error(labels.bad_tools);
        if (parsed.length) request.tools = parsed;
      }
      return request;
    }

    // "View code": the same request with a placeholder for the key.
    function shortened(request) {
      return JSON.parse(JSON.stringify(request, function (key, value) {
        if (typeof value === "string" && value.indexOf("data:") === 0 && value.length > 80) {
          return value.slice(0, 40) + "…(your image, base64)";
        }
        return value;
      }));
    }
    function python(value, indent) {
      var pad = new Array(indent + 1).join("    ");
      var inner = pad + "    ";
      if (value === null) return "None";
      if (value === true) return "True";
      if (value === false) return "False";
      if (typeof value === "number") return String(value);
      if (typeof value === "string") return JSON.stringify(value);
      if (Array.isArray(value)) {
        if (!value.length) return "[]";
        return "[\n" + value.map(function (v) { return inner + python(v, indent + 1); }).join(",\n") + ",\n" + pad + "]";
      }
      var keys = Object.keys(value);
      if (!keys.length) return "{}";
      return "{\n" + keys.map(function (k) { return inner + JSON.stringify(k) + ": " + python(value[k], indent + 1); }).join(",\n") + ",\n" + pad + "}";
    }
    function showCode() {
      var request;
      try { request = shortened(build()); } catch (e) { return; }
      var base = window.location.origin + "/v1";
      var body = JSON.stringify(Object.assign({}, request, { stream: true }), null, 2).replace(/'/g, "'\\''");
      $("pg-curl").value = "curl " + base + "/chat/completions \\\n" +
        "  -H \"Content-Type: application/json\" \\\n" +
        "  -H \"Authorization: Bearer $MOONSHOT_API_KEY\" \\\n" +
        "  -d '" + body + "'";
      var args = Object.keys(request).map(function (k) { return "    " + k + "=" + python(request[k], 1) + ","; });
      $("pg-python").value = "import os\n\nfrom openai import OpenAI\n\n" +
        "client = OpenAI(\n    base_url=\"" + base + "\",\n    api_key=os.environ[\"MOONSHOT_API_KEY\"],\n)\n" +
        "stream = client.chat.completions.create(\n" + args.join("\n") + "\n    stream=True,\n)\n" +
        "for chunk in stream:\n" +
        "    delta = chunk.choices[0].delta if chunk.choices else None\n" +
        "    if delta is not None:\n" +
        "        thinking = getattr(delta, \"reasoning_content\", None)\n" +
        "        print(thinking or delta.content or \"\", end=\"\", flush=True)\n";
    }

    function post(url, body, signal) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "text/event-stream, application/json" },
        body: JSON.stringify(body),
        signal: signal
      });
    }
    function refusal(response) {
      var type = response.headers.get("content-type") || "";
      if (type.indexOf("application/json") === 0) {
        return response.json().then(function (body) {
          return (body && body.error && body.error.message) || labels.network_error;
        });
      }
      return Promise.resolve(response.status === 403 ? labels.csrf : labels.network_error);
    }

    function count() {
      var request;
      try { request = build(); } catch (e) { return; }
      if (!$("pg-user").value.trim() && !$("pg-system").value.trim()) {
        $("pg-tokens").textContent = labels.tokens_unknown;
        return;
      }
      var seq = ++countSeq;
      post(form.getAttribute("data-count"), { project: $("pg-project").value, model: request.model, messages: request.messages })
        .then(function (response) {
          if (!response.ok) return null;
          return response.json();
        })
        .then(function (body) {
          if (seq !== countSeq) return; // a newer count is coming
          $("pg-tokens").textContent = body ? fill(labels.tokens, { count: number(body.total_tokens) }) : labels.tokens_unknown;
        }, function () { /* counting is a hint: say nothing */ });
    }
    function changed() {
      showCode();
      window.clearTimeout(countTimer);
      countTimer = window.setTimeout(count, 400);
    }

    function streamAnswer(request) {
      var answer = $("pg-answer"), thinking = $("pg-thinking"), box = $("pg-thinking-box");
      var callsOut = $("pg-calls"), callsBox = $("pg-calls-box"), usage = $("pg-usage");
      answer.textContent = ""; thinking.textContent = ""; callsOut.textContent = ""; usage.textContent = "";
      box.hidden = true; callsBox.hidden = true; fail("");
      var calls = [];
      var finish = null;
      running = new AbortController();
      $("pg-send").disabled = true; $("pg-stop").disabled = false;
      answer.setAttribute("aria-busy", "true");
      function done() {
        running = null;
        $("pg-send").disabled = false; $("pg-stop").disabled = true;
        answer.setAttribute("aria-busy", "false");
      }
      function take(chunk) {
        if (chunk.error) { fail(chunk.error.message || labels.network_error); return; }
        (chunk.choices || []).forEach(function (choice) {
          var delta = choice.delta || {};
          if (delta.reasoning_content) { box.hidden = false; thinking.textContent += delta.reasoning_content; }
          if (delta.content) answer.textContent += delta.content;
          (delta.tool_calls || []).forEach(function (call) {
            var at = calls[call.index] || (calls[call.index] = { id: "", type: "function", function: { name: "", arguments: "" } });
            if (call.id) at.id = call.id;
            if (call.function && call.function.name) at.function.name += call.function.name;
            if (call.function && call.function.arguments) at.function.arguments += call.function.arguments;
            callsBox.hidden = false;
            callsOut.textContent = JSON.stringify(calls, null, 2);
          });
          if (choice.finish_reason) finish = choice.finish_reason;
        });
        if (chunk.usage) {
          usage.textContent = fill(labels.usage, {
            prompt: number(chunk.usage.prompt_tokens),
            completion: number(chunk.usage.completion_tokens),
            total: number(chunk.usage.total_tokens)
          }) + (finish && finish !== "stop" ? " " + fill(labels.finish, { reason: finish }) : "");
        }
      }
      post(form.getAttribute("action"), { project: $("pg-project").value, request: request }, running.signal)
        .then(function (response) {
          if (!response.ok || !response.body) {
            return refusal(response).then(function (message) { fail(message); });
          }
          var reader = response.body.getReader();
          var decoder = new TextDecoder();
          var buffer = "";
          function pump() {
            return reader.read().then(function (step) {
              if (step.done) return;
              buffer += decoder.decode(step.value, { stream: true });
              var events = buffer.split("\n\n");
              buffer = events.pop();
              events.forEach(function (event) {
                event.split("\n").forEach(function (line) {
                  if (line.indexOf("data: ") !== 0) return;
                  var payload = line.slice(6);
                  if (payload === "[DONE]") return;
                  try { take(JSON.parse(payload)); } catch (e) { /* not ours */ }
                });
              });
              return pump();
            });
          }
          return pump();
        })
        .catch(function (error) {
          fail(error && error.name === "AbortError" ? labels.stopped : labels.network_error);
        })
        .then(done);
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (running) return;
      if (!$("pg-user").value.trim()) { fail(labels.empty_message); $("pg-user").focus(); return; }
      var request;
      try { request = build(); } catch (e) { fail(e.message); return; }
      streamAnswer(request);
    });
    $("pg-stop").addEventListener("click", function () { if (running) running.abort(); });
    $("pg-user").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    $("pg-format").addEventListener("change", function () {
      $("pg-schema").disabled = $("pg-format").value !== "json_schema";
    });
    $("pg-image").addEventListener("change", function () {
      var file = $("pg-image").files[0];
      image = null;
      fail("");
      if (!file) { changed(); return; }
      if (file.size > MAX_IMAGE) { fail(labels.image_too_large); $("pg-image").value = ""; return; }
      var reader = new FileReader();
      reader.onload = function () { image = String(reader.result); changed(); };
      reader.readAsDataURL(file);
    });
    $("pg-model").addEventListener("change", function () { showModel(); changed(); });
    ["pg-project", "pg-system", "pg-user", "pg-max-tokens", "pg-format", "pg-schema", "pg-tools"].forEach(function (id) {
      $(id).addEventListener("input", changed);
      $(id).addEventListener("change", changed);
    });
    showModel();
    showCode();
  }

  if (document.readyState !== "loading") start();
  else document.addEventListener("DOMContentLoaded", start);
})();
