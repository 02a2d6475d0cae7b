// The execution page follows a running execution: every 2 s it fetches the
// live part of the page, rendered by the server, and swaps it in, until the
// execution has ended.
(function () {
  var live = document.getElementById("live");
  if (!live || live.dataset.running !== "true") return;
  var timer = setInterval(function () {
    fetch(live.dataset.src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        live.innerHTML = html; // our own template's output, escaped by html/template
        if (r2(html) === "false") clearInterval(timer);
      })
      .catch(function () { /* keep the last view; try again next tick */ });
  }, 2000);
  function r2(html) {
    var m = /data-running="(true|false)"/.exec(html);
    return m ? m[1] : "true";
  }
})();
