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
