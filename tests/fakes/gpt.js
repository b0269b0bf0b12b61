// A stand-in for Google Publisher Tag (securepubads.g.doubleclick.net/tag/js/gpt.js) for the browser tests:
// the part of the googletag API the Pentad loader calls (cmd queue, defineSlot, addService, setTargeting,
// pubads().addEventListener("slotRenderEnded"), enableServices, display), recording every call in
// window.fakeGpt.calls. It fills a slot (a "GPT ad" element, isEmpty false) when the page's URL has ?fill=1,
// else reports it empty (isEmpty true), as Ad Manager does when no line item matches.
(function (w) {
  "use strict";
  var g = (w.googletag = w.googletag || { cmd: [] });
  var fill = new URLSearchParams(w.location.search).get("fill") === "1";
  var calls = [], listeners = [], slots = [], enabled = false;
  w.fakeGpt = { calls: calls, fill: fill };

  var pubads = {
    addEventListener: function (type, listener) {
      calls.push(["pubads.addEventListener", type]);
      listeners.push({ type: type, listener: listener });
      return pubads;
    },
    enableSingleRequest: function () {
      calls.push(["pubads.enableSingleRequest"]);
      return true;
    },
  };

  function Slot(adUnitPath, sizes, divId) {
    this.adUnitPath = adUnitPath;
    this.sizes = sizes;
    this.divId = divId;
    this.targeting = {};
  }
  Slot.prototype.addService = function (service) {
    calls.push(["slot.addService", service === pubads ? "pubads" : "other"]);
    return this;
  };
  Slot.prototype.setTargeting = function (key, value) {
    calls.push(["slot.setTargeting", key, value]);
    this.targeting[key] = Array.isArray(value) ? value : [String(value)];
    return this;
  };
  Slot.prototype.getTargeting = function (key) {
    return this.targeting[key] || [];
  };
  Slot.prototype.getAdUnitPath = function () {
    return this.adUnitPath;
  };
  Slot.prototype.getSlotElementId = function () {
    return this.divId;
  };

  g.pubads = function () {
    return pubads;
  };
  g.defineSlot = function (adUnitPath, sizes, divId) {
    calls.push(["defineSlot", adUnitPath, sizes, divId]);
    var slot = new Slot(adUnitPath, sizes, divId);
    slots.push(slot);
    return slot;
  };
  g.enableServices = function () {
    calls.push(["enableServices"]);
    enabled = true;
  };
  g.display = function (divId) {
    calls.push(["display", divId]);
    var slot = slots.filter(function (s) { return s.divId === divId; })[0];
    if (!slot || !enabled) throw new Error("googletag.display: slot not defined or services not enabled");
    setTimeout(function () {
      if (fill) {
        var ad = document.createElement("div");
        ad.className = "gpt-ad";
        ad.textContent = "GPT ad for " + slot.adUnitPath;
        document.getElementById(divId).appendChild(ad);
      }
      listeners.forEach(function (entry) {
        if (entry.type === "slotRenderEnded") {
          entry.listener({ slot: slot, isEmpty: !fill, size: fill ? slot.sizes[0] : null, serviceName: "publisher_ads" });
        }
      });
    }, 50);
  };

  // commands queued before the library loaded run now; later ones at once
  var queued = Array.isArray(g.cmd) ? g.cmd : [];
  g.cmd = { push: function (fn) { fn(); return 1; } };
  queued.forEach(function (fn) { fn(); });
  g.apiReady = true;
})(window);
