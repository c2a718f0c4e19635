// CityWeave pages: live events and the emergency button. No inline script anywhere (CSP).
(function () {
  "use strict";

  // -- Live updates: server-sent events from /api/v1/events (the session cookie authenticates).
  // Parts of a page say what they follow with data-live="alarm,work_order" (the overview's feed,
  // fragments that refresh themselves) or data-live="device_state" (a home device tile, or the
  // console device page's readings, that redraws itself from its data-tile address). One stream
  // per page carries the union of those types.
  function liveTypes() {
    var types = {};
    document.querySelectorAll("[data-live]").forEach(function (el) {
      el.getAttribute("data-live").split(",").forEach(function (t) { if (t) { types[t] = true; } });
    });
    return Object.keys(types);
  }

  function showInFeed(feed, kind, data) {
    var labels = {};
    try { labels = JSON.parse(feed.getAttribute("data-labels") || "{}"); } catch (e) { /* words stay as sent */ }
    function word(key, fallback) { return labels[key] || fallback || ""; }
    var item = document.createElement("li");
    var title = data.title ? (data.title[document.documentElement.lang] || data.title["zh-CN"]) : "";
    var what = kind === "work_order" ? word("work_order." + data.action, data.action) : word(data.change, data.change);
    var parts = [what || word(kind, kind)];
    if (data.severity) { parts.push(word("severity." + data.severity, data.severity)); }
    parts.push(title || data.number || data.kind || "");
    if (data.place_id) { parts.push(data.place_id); }
    item.className = "sev-" + (data.severity || "info");
    item.setAttribute("data-change", data.change || data.action || kind);
    item.textContent = parts.filter(function (p) { return p; }).join(" · ");
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > 50) { feed.removeChild(feed.lastChild); }
  }

  function redrawDevice(deviceId) {
    // The tile's controls have ids: htmx gives focus back to the redrawn button, so a keyboard
    // or screen-reader user stays where they were.
    document.querySelectorAll("[data-tile]").forEach(function (tile) {
      if (tile.getAttribute("data-device") !== deviceId || !window.htmx) { return; }
      window.htmx.ajax("GET", tile.getAttribute("data-tile"), {target: tile, swap: "outerHTML"});
    });
  }

  function startLive() {
    var types = liveTypes();
    if (!types.length || !window.EventSource) { return; }
    var feed = document.getElementById("live-feed");
    var source = new EventSource("/api/v1/events?types=" + types.join(","));
    types.forEach(function (kind) {
      source.addEventListener(kind, function (event) {
        var data;
        // The stream's data is {id, type, place_path, at, data: {...the event's fields}}.
        try { data = JSON.parse(event.data).data || {}; } catch (e) { return; /* a malformed event is skipped */ }
        if (kind === "device_state") { redrawDevice(data.device_id); return; }
        if (feed) { showInFeed(feed, kind, data); }
        document.body.dispatchEvent(new CustomEvent("cw:live"));
      });
    });
    // Events were lost (a slow link, a restart): everything that follows events reloads.
    source.addEventListener("resync", function () {
      document.body.dispatchEvent(new CustomEvent("cw:live"));
      document.querySelectorAll("[data-tile]").forEach(function (tile) {
        redrawDevice(tile.getAttribute("data-device"));
      });
    });
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
    startLive();
    armEmergency();
  });
})();
