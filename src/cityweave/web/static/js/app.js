// CityWeave pages: live events and the emergency button. No inline script anywhere (CSP).
(function () {
  "use strict";

  // -- Live feed: server-sent events from /api/v1/events (the session cookie authenticates).
  function startLiveFeed() {
    var feed = document.getElementById("live-feed");
    // The overview's feed, or any part of a page that refreshes itself on events (data-live).
    if ((!feed && !document.querySelector("[data-live]")) || !window.EventSource) { return; }
    var source = new EventSource("/api/v1/events?types=alarm,work_order");
    function show(kind, data) {
      if (!feed) { document.body.dispatchEvent(new CustomEvent("cw:live")); return; }
      var item = document.createElement("li");
      var title = data.title ? (data.title[document.documentElement.lang] || data.title["zh-CN"]) : "";
      item.className = "sev-" + (data.severity || "info");
      item.textContent = [data.change || data.action || kind, title || data.kind || data.number || "",
        data.place_id || ""].join(" · ");
      feed.insertBefore(item, feed.firstChild);
      while (feed.children.length > 50) { feed.removeChild(feed.lastChild); }
      document.body.dispatchEvent(new CustomEvent("cw:live"));
    }
    ["alarm", "work_order"].forEach(function (kind) {
      source.addEventListener(kind, function (event) {
        // The stream's data is {id, type, place_path, at, data: {...the event's fields}}.
        try { show(kind, JSON.parse(event.data).data || {}); } catch (e) { /* a malformed event is skipped */ }
      });
    });
    source.addEventListener("resync", function () { document.body.dispatchEvent(new CustomEvent("cw:live")); });
  }

  // -- Emergency call: tap, then a few seconds to cancel, then it is sent.
  function armEmergency() {
    var form = document.getElementById("sos");
    if (!form) { return; }
    var button = form.querySelector("button.sos");
    var seconds = parseInt(form.getAttribute("data-confirm-seconds") || "5", 10);
    var timer = null;
    var label = button.textContent;
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "cancel";
    cancel.hidden = true;
    cancel.textContent = document.documentElement.lang === "en" ? "Cancel" : "取消";
    form.appendChild(cancel);
    function reset() {
      clearInterval(timer); timer = null;
      button.textContent = label; button.disabled = false; cancel.hidden = true;
    }
    cancel.addEventListener("click", reset);
    form.addEventListener("submit", function (event) {
      if (form.dataset.confirmed === "1") { form.dataset.confirmed = ""; return; }
      event.preventDefault();
      event.stopImmediatePropagation();
      if (timer) { return; }
      var left = seconds;
      button.disabled = true; cancel.hidden = false; cancel.focus();
      var sending = document.documentElement.lang === "en" ? "Calling in " : "呼叫倒计时 ";
      button.textContent = sending + left;
      timer = setInterval(function () {
        left -= 1;
        if (left > 0) { button.textContent = sending + left; return; }
        reset();
        form.dataset.confirmed = "1";
        if (window.htmx) { window.htmx.trigger(form, "submit"); } else { form.submit(); }
      }, 1000);
    }, true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    startLiveFeed();
    armEmergency();
  });
})();
